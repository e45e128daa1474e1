/**
 * Shape checks for what arrives from outside: a manifest's config and totals (types, ranges,
 * cross-references), and the bounds every config must respect before anything is allocated from
 * its numbers. Every failure names the field (`config.moe.numExperts`), so a hostile or damaged
 * manifest is refused by what is wrong rather than by a crash somewhere downstream.
 */
import { ARCHITECTURES } from './config.ts';
import { ManifestError } from './errors.ts';
import { LAYER_TYPES, ROUTER_KINDS, type ModelConfig } from './types.ts';

/**
 * Largest values a config may state. Far above any released MoE (DeepSeek-V3: 61 layers, 256
 * experts, vocab 129,280, hidden 7,168), low enough that a hostile config cannot make a plan or a
 * tensor table that eats gigabytes before something else fails.
 */
export const CONFIG_LIMITS = {
  numLayers: 1024,
  hiddenSize: 65_536,
  vocabSize: 4_194_304,
  numHeads: 1024,
  numKvHeads: 1024,
  headDim: 4096,
  intermediateSize: 1_048_576,
  maxPositionEmbeddings: 16_777_216,
  numExperts: 4096,
  numSharedExperts: 64,
  /** Routed experts over all MoE layers (each is at least one shard). */
  totalExperts: 1_048_576,
  /** Weights in all (a 100-trillion-parameter model). */
  parameters: 1e14,
  loraRank: 65_536,
} as const;

type Path = string;

function fail(path: Path, what: string, got: unknown): never {
  const shown = got === undefined ? 'nothing (missing)' : typeof got === 'number' || typeof got === 'boolean' || got === null ? String(got) : typeof got === 'string' ? JSON.stringify(got.slice(0, 60)) : Array.isArray(got) ? 'a list' : typeof got;
  throw new ManifestError(`${path} must be ${what}, got ${shown}`);
}

function obj(v: unknown, path: Path): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || ArrayBuffer.isView(v)) fail(path, 'an object', v);
  return v as Record<string, unknown>;
}

/** An integer in [min, max]. */
export function intIn(v: unknown, path: Path, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) fail(path, `an integer in [${min}, ${max}]`, v);
  return v;
}

function num(v: unknown, path: Path, positive = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || (positive && !(v > 0))) fail(path, positive ? 'a positive finite number' : 'a finite number', v);
  return v;
}

function bool(v: unknown, path: Path): boolean {
  if (typeof v !== 'boolean') fail(path, 'true or false', v);
  return v;
}

function numOrNull(v: unknown, path: Path): void {
  if (v !== null) num(v, path);
}

function intList(v: unknown, path: Path, min: number, max: number, maxLen: number): number[] {
  if (!Array.isArray(v) || v.length > maxLen) fail(path, `a list of at most ${maxLen} integers`, v);
  (v as unknown[]).forEach((x, i) => intIn(x, `${path}[${i}]`, min, max));
  return v as number[];
}

/**
 * Checks a config's numbers against CONFIG_LIMITS and against each other, before anything is
 * sized from them. `where` prefixes field names (a file, or `config` inside a manifest).
 */
export function checkConfigBounds(c: ModelConfig, where: string): void {
  const L = CONFIG_LIMITS;
  const at = (f: string) => `${where}.${f}`;
  intIn(c.numLayers, at('numLayers'), 1, L.numLayers);
  intIn(c.hiddenSize, at('hiddenSize'), 1, L.hiddenSize);
  intIn(c.vocabSize, at('vocabSize'), 1, L.vocabSize);
  intIn(c.numHeads, at('numHeads'), 1, L.numHeads);
  intIn(c.numKvHeads, at('numKvHeads'), 1, c.numHeads);
  if (c.numHeads % c.numKvHeads !== 0) fail(at('numKvHeads'), `a divisor of numHeads (${c.numHeads})`, c.numKvHeads);
  intIn(c.headDim, at('headDim'), 1, L.headDim);
  intIn(c.intermediateSize, at('intermediateSize'), 0, L.intermediateSize);
  intIn(c.maxPositionEmbeddings, at('maxPositionEmbeddings'), 1, L.maxPositionEmbeddings);
  const m = c.moe;
  intIn(m.numExperts, at('moe.numExperts'), 1, L.numExperts);
  intIn(m.topK, at('moe.topK'), 1, m.numExperts);
  intIn(m.expertIntermediateSize, at('moe.expertIntermediateSize'), 1, L.intermediateSize);
  intIn(m.numSharedExperts, at('moe.numSharedExperts'), 0, L.numSharedExperts);
  intIn(m.sharedIntermediateSize, at('moe.sharedIntermediateSize'), 0, L.intermediateSize * L.numSharedExperts);
  intIn(m.nGroup, at('moe.nGroup'), 1, m.numExperts);
  if (m.numExperts % m.nGroup !== 0) fail(at('moe.nGroup'), `a divisor of moe.numExperts (${m.numExperts})`, m.nGroup);
  intIn(m.topkGroup, at('moe.topkGroup'), 1, m.nGroup);
  intList(m.denseLayers, at('moe.denseLayers'), 0, c.numLayers - 1, c.numLayers);
  const moeLayers = c.numLayers - new Set(m.denseLayers).size;
  if (moeLayers * m.numExperts > L.totalExperts) fail(at('moe'), `at most ${L.totalExperts} routed experts in all`, moeLayers * m.numExperts);
  const H = c.hiddenSize;
  const params = moeLayers * m.numExperts * 3 * m.expertIntermediateSize * H + 2 * c.vocabSize * H + c.numLayers * (4 * c.numHeads * c.headDim * H + 3 * c.intermediateSize * H);
  if (params > L.parameters) fail(where, `a model of at most ${L.parameters} weights`, params);
  if (c.bosTokenId !== null) intIn(c.bosTokenId, at('bosTokenId'), 0, c.vocabSize - 1);
  intList(c.eosTokenIds, at('eosTokenIds'), 0, c.vocabSize - 1, 64);
  if (c.slidingWindow !== null) intIn(c.slidingWindow, at('slidingWindow'), 1, L.maxPositionEmbeddings);
  if (c.mla) {
    if (c.mla.qLoraRank !== null) intIn(c.mla.qLoraRank, at('mla.qLoraRank'), 1, L.loraRank);
    intIn(c.mla.kvLoraRank, at('mla.kvLoraRank'), 1, L.loraRank);
    intIn(c.mla.qkNopeHeadDim, at('mla.qkNopeHeadDim'), 0, L.headDim);
    intIn(c.mla.qkRopeHeadDim, at('mla.qkRopeHeadDim'), 0, L.headDim);
    intIn(c.mla.vHeadDim, at('mla.vHeadDim'), 1, L.headDim);
  }
}

/**
 * The config stored in a manifest: every field the forward pass reads has the right type, then the
 * bounds above. Fields this version does not know are left alone (newer writers may add them; the
 * engine refuses what it cannot honour by name).
 */
export function checkManifestConfig(v: unknown): ModelConfig {
  const c = obj(v, 'config');
  if (typeof c.architecture !== 'string' || !(ARCHITECTURES as readonly string[]).includes(c.architecture)) fail('config.architecture', `one of ${ARCHITECTURES.join(', ')}`, c.architecture);
  for (const f of ['vocabSize', 'hiddenSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'maxPositionEmbeddings', 'intermediateSize']) intIn(c[f], `config.${f}`, 0, Number.MAX_SAFE_INTEGER);
  num(c.rmsNormEps, 'config.rmsNormEps', true);
  num(c.ropeTheta, 'config.ropeTheta', true);
  for (const f of ['ropeInterleaved', 'qkNorm', 'tieWordEmbeddings']) bool(c[f], `config.${f}`);
  if (c.bosTokenId !== null) intIn(c.bosTokenId, 'config.bosTokenId', 0, Number.MAX_SAFE_INTEGER);
  if (c.slidingWindow !== null) intIn(c.slidingWindow, 'config.slidingWindow', 0, Number.MAX_SAFE_INTEGER);
  intList(c.eosTokenIds, 'config.eosTokenIds', 0, Number.MAX_SAFE_INTEGER, 64);
  for (const f of ['attentionBias', 'attentionSinks']) if (c[f] !== undefined) bool(c[f], `config.${f}`);
  if (c.layerTypes !== undefined) {
    if (!Array.isArray(c.layerTypes) || c.layerTypes.length !== c.numLayers) fail('config.layerTypes', `a list of ${String(c.numLayers)} layer types`, c.layerTypes);
    (c.layerTypes as unknown[]).forEach((t, i) => {
      if (!(LAYER_TYPES as readonly unknown[]).includes(t)) fail(`config.layerTypes[${i}]`, `one of ${LAYER_TYPES.join(', ')}`, t);
    });
  }
  if (c.ropeScaling !== null) {
    const r = obj(c.ropeScaling, 'config.ropeScaling');
    if (typeof r.type !== 'string') fail('config.ropeScaling.type', 'a string', r.type);
    num(r.factor, 'config.ropeScaling.factor', true);
    for (const f of ['originalMaxPositionEmbeddings', 'betaFast', 'betaSlow', 'mscale', 'mscaleAllDim', 'attentionFactor', 'lowFreqFactor', 'highFreqFactor']) numOrNull(r[f] ?? null, `config.ropeScaling.${f}`);
    if (r.truncate !== undefined) bool(r.truncate, 'config.ropeScaling.truncate');
  }
  const m = obj(c.moe, 'config.moe');
  if (!(ROUTER_KINDS as readonly unknown[]).includes(m.router)) fail('config.moe.router', `one of ${ROUTER_KINDS.join(', ')}`, m.router);
  if (m.expertBias !== undefined) bool(m.expertBias, 'config.moe.expertBias');
  if (m.clampedSwiglu !== undefined) {
    const g = obj(m.clampedSwiglu, 'config.moe.clampedSwiglu');
    num(g.alpha, 'config.moe.clampedSwiglu.alpha', true);
    num(g.limit, 'config.moe.clampedSwiglu.limit', true);
  }
  for (const f of ['numExperts', 'topK', 'expertIntermediateSize', 'numSharedExperts', 'sharedIntermediateSize', 'nGroup', 'topkGroup']) intIn(m[f], `config.moe.${f}`, 0, Number.MAX_SAFE_INTEGER);
  bool(m.normTopkProb, 'config.moe.normTopkProb');
  num(m.routedScalingFactor, 'config.moe.routedScalingFactor');
  if (!Array.isArray(m.denseLayers)) fail('config.moe.denseLayers', 'a list of layer indices', m.denseLayers);
  if (c.mla !== null) {
    const a = obj(c.mla, 'config.mla');
    if (a.qLoraRank !== null) intIn(a.qLoraRank, 'config.mla.qLoraRank', 0, Number.MAX_SAFE_INTEGER);
    for (const f of ['kvLoraRank', 'qkNopeHeadDim', 'qkRopeHeadDim', 'vHeadDim']) intIn(a[f], `config.mla.${f}`, 0, Number.MAX_SAFE_INTEGER);
    num(a.softmaxScale, 'config.mla.softmaxScale', true);
  }
  const config = c as unknown as ModelConfig;
  checkConfigBounds(config, 'config');
  return config;
}

/** `totals` as stored: four non-negative integers (checked against the shard table by the caller). */
export function checkTotals(v: unknown): { parameters: number; bytes: number; denseBytes: number; expertBytes: number } {
  const t = obj(v, 'totals');
  for (const f of ['parameters', 'bytes', 'denseBytes', 'expertBytes']) intIn(t[f], `totals.${f}`, 0, Number.MAX_SAFE_INTEGER);
  return t as { parameters: number; bytes: number; denseBytes: number; expertBytes: number };
}
