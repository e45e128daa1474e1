import { Packr } from 'msgpackr';
import { ManifestError } from './errors.ts';
import { isHash } from './hash.ts';
import { alignUp, expertTensors, architectureTensors, isMoeLayer, storedDtype, type TensorSpec } from './layout.ts';
import { WEIGHT_DTYPES } from './formats/index.ts';
import { matrixDims, tensorByteLength } from './quant.ts';
import { checkManifestConfig, checkTotals, intIn } from './schema.ts';
import { TENSOR_ALIGN, type ExpertEntry, type Manifest, type ModelConfig, type ShardEntry, type SourceInfo, type TensorEntry, type WeightDtype } from './types.ts';

// Records off: the bytes must be plain msgpack any decoder reads, and stable for the model id.
const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false, mapsAsObjects: true });

const DTYPES = WEIGHT_DTYPES;

/** Tensor table as columns: far smaller than one map per tensor. */
interface TensorColumns {
  names: string[];
  shapes: number[][];
  dtypes: Uint8Array;
  shard: number[];
  offset: number[];
  length: number[];
}

/**
 * The encoded manifest. When the tensor table, shard kinds and expert index follow from the
 * config and the plan rules (every manifest `convert` and `synth` write), only shard sizes that
 * cannot be derived are stored (`layout`); otherwise every table is stored in full (`tables`).
 * Hashes are one binary string, 32 bytes per shard. A two-level manifest (`lists`, always with the
 * layout) keeps only the dense shards' hashes here and one hash per MoE layer naming a layer list.
 */
interface Encoded {
  format: 'rdrr';
  version: 1;
  name: string;
  quant: WeightDtype;
  expertQuant?: WeightDtype;
  source?: SourceInfo;
  config: ModelConfig;
  totals: Manifest['totals'];
  tokenizer: { names: string[]; hashes: Uint8Array };
  hashes: Uint8Array;
  layout?: { denseSizes: number[]; expertParts: Uint8Array | number; splitSizes: number[] };
  /** Two-level: one hash per MoE layer naming its list of expert shard hashes (then `hashes` holds the dense shards only). */
  lists?: Uint8Array;
  tables?: {
    tensors: TensorColumns;
    sizes: number[];
    kinds: Uint8Array;
    experts: { layer: number[]; expert: number[]; shards: number[][]; bytes: number[] };
  };
}

export function encodeManifest(m: Manifest): Uint8Array {
  const tokNames = Object.keys(m.tokenizer);
  const enc: Encoded = {
    format: m.format,
    version: m.version,
    name: m.name,
    quant: m.quant,
    ...(m.expertQuant !== undefined ? { expertQuant: m.expertQuant } : {}),
    ...(m.source !== undefined ? { source: m.source } : {}),
    config: m.config,
    totals: m.totals,
    tokenizer: { names: tokNames, hashes: hexToBytes(tokNames.map((n) => m.tokenizer[n]!)) },
    hashes: hexToBytes(m.shards.map((s) => s.hash)),
  };
  const layout = compactLayout(m);
  if (layout && deepEqual(expand(m, layout), { tensors: m.tensors, shards: m.shards, experts: m.experts })) {
    enc.layout = layout;
    if (m.layerLists !== undefined) {
      enc.hashes = hexToBytes(m.shards.slice(0, layout.denseSizes.length).map((s) => s.hash));
      enc.lists = hexToBytes(m.layerLists);
    }
  } else if (m.layerLists !== undefined) throw new ManifestError('layerLists: a two-level manifest needs the derived layout (the shard order convert writes)');
  else {
    enc.tables = {
      tensors: toColumns(m.tensors),
      sizes: m.shards.map((s) => s.size),
      kinds: Uint8Array.from(m.shards, (s) => (s.kind === 'dense' ? 0 : 1)),
      experts: {
        layer: m.experts.map((e) => e.layer),
        expert: m.experts.map((e) => e.expert),
        shards: m.experts.map((e) => e.shards),
        bytes: m.experts.map((e) => e.bytes),
      },
    };
  }
  return packr.pack(enc);
}

/**
 * Decodes and checks a manifest. A two-level one needs its layer lists (hash → bytes, already
 * verified against the hash: `loadManifest` fetches and verifies them); a single-level one ignores `lists`.
 */
export function decodeManifest(bytes: Uint8Array, source = 'manifest', lists?: ReadonlyMap<string, Uint8Array>): Manifest {
  let enc: Encoded;
  try {
    enc = packr.unpack(bytes) as Encoded;
  } catch (err) {
    throw new ManifestError(`${source}: not a msgpack manifest (${(err as Error).message})`, { cause: err });
  }
  try {
    if (typeof enc !== 'object' || enc === null || enc.format !== 'rdrr') throw new Error('not an RDRR manifest (format field)');
    if (enc.version !== 1) throw new Error(`unsupported version ${String(enc.version)}`);
    if (!DTYPES.includes(enc.quant)) throw new Error(`unknown quant ${String(enc.quant)}`);
    if (enc.expertQuant !== undefined && !DTYPES.includes(enc.expertQuant)) throw new ManifestError(`unknown expert quant ${String(enc.expertQuant)}`);
    if (enc.source !== undefined && !isSourceInfo(enc.source)) throw new ManifestError('source record is malformed');
    if (typeof enc.name !== 'string' || enc.name.length > 1024) throw new ManifestError('name must be a string of at most 1024 characters');
    const config = checkManifestConfig(enc.config);
    const totals = checkTotals(enc.totals);
    let hashes = bytesToHexList(enc.hashes, 'shard hashes');
    let layerLists: string[] | undefined;
    if (enc.lists !== undefined) {
      if (!enc.layout) throw new ManifestError('lists: a two-level manifest must carry the derived layout');
      layerLists = bytesToHexList(enc.lists, 'lists (layer list hashes)');
      hashes = [...hashes, ...expertHashesOfLists(layerLists, config, enc.layout, lists)];
    }
    const tokHashes = bytesToHexList(enc.tokenizer?.hashes, 'tokenizer hashes');
    if (!Array.isArray(enc.tokenizer.names) || tokHashes.length !== enc.tokenizer.names.length) throw new Error('tokenizer table is inconsistent');
    const tokenizer: Record<string, string> = {};
    enc.tokenizer.names.forEach((n, i) => {
      if (typeof n !== 'string' || n.length > 256 || n === '__proto__') throw new ManifestError(`tokenizer.names[${i}] is not a file name`);
      tokenizer[n] = tokHashes[i]!;
    });
    const base = {
      format: 'rdrr' as const,
      version: 1 as const,
      name: enc.name,
      config,
      quant: enc.quant,
      ...(enc.expertQuant !== undefined ? { expertQuant: enc.expertQuant } : {}),
      ...(enc.source !== undefined ? { source: enc.source } : {}),
    };
    let tables: Pick<Manifest, 'tensors' | 'shards' | 'experts'>;
    if (enc.layout) {
      checkLayout(enc.layout, config, hashes.length);
      tables = expand({ ...base, tensors: [], shards: hashes.map((hash) => ({ hash, size: 0, kind: 'dense' })), experts: [], tokenizer, totals }, enc.layout);
    } else if (enc.tables) tables = fromTables(enc.tables, hashes);
    else throw new Error('neither layout nor tables present');
    const m: Manifest = { ...base, ...tables, tokenizer, totals, ...(layerLists ? { layerLists } : {}) };
    validateManifest(m);
    return m;
  } catch (err) {
    if (err instanceof ManifestError) throw new ManifestError(`${source}: ${err.message}`, { cause: err });
    throw new ManifestError(`${source}: malformed manifest: ${(err as Error).message}`, { cause: err });
  }
}

/** Hashes of the layer lists a manifest's top level names, in MoE-layer order (none: single-level). */
export function layerListHashes(bytes: Uint8Array, source = 'manifest'): string[] {
  let enc: Encoded;
  try {
    enc = packr.unpack(bytes) as Encoded;
  } catch (err) {
    throw new ManifestError(`${source}: not a msgpack manifest (${(err as Error).message})`, { cause: err });
  }
  if (typeof enc !== 'object' || enc === null || enc.lists === undefined) return [];
  return bytesToHexList(enc.lists, `${source}: lists (layer list hashes)`);
}

const LIST_FORMAT = 'rdrr-layer-list';

/** One MoE layer's list blob: its routed experts' shard hashes in expert order (parts in order). */
export function encodeLayerList(layer: number, hashes: string[]): Uint8Array {
  return packr.pack({ format: LIST_FORMAT, layer, hashes: hexToBytes(hashes) });
}

/** The expert shard hashes of every MoE layer, from its list blob, each checked against what the layout says the layer holds. */
function expertHashesOfLists(layerLists: string[], config: ModelConfig, layout: NonNullable<Encoded['layout']>, lists: ReadonlyMap<string, Uint8Array> | undefined): string[] {
  checkExpertParts(layout, config);
  const moe = Array.from({ length: config.numLayers }, (_, l) => l).filter((l) => isMoeLayer(config, l));
  if (layerLists.length !== moe.length) throw new ManifestError(`lists names ${layerLists.length} layer lists, the config has ${moe.length} MoE layers`);
  if (!lists) throw new ManifestError(`a two-level manifest: its ${moe.length} layer lists are needed to decode it (loadManifest fetches them)`);
  const out: string[] = [];
  let expert = 0;
  moe.forEach((layer, i) => {
    const at = `layerLists[${i}] (layer ${layer})`;
    const blob = lists.get(layerLists[i]!);
    if (!blob) throw new ManifestError(`${at} ${layerLists[i]} was not supplied`);
    let list: { format?: unknown; layer?: unknown; hashes?: unknown };
    try {
      list = packr.unpack(blob) as typeof list;
    } catch (err) {
      throw new ManifestError(`${at} is not a msgpack layer list (${(err as Error).message})`, { cause: err });
    }
    if (typeof list !== 'object' || list === null || list.format !== LIST_FORMAT) throw new ManifestError(`${at}.format must be "${LIST_FORMAT}"`);
    if (list.layer !== layer) throw new ManifestError(`${at}.layer is ${String(list.layer)}, the manifest names it for layer ${layer}`);
    const hashes = bytesToHexList(list.hashes, `${at}.hashes`);
    let want = 0;
    for (let e = 0; e < config.moe.numExperts; e++, expert++) want += typeof layout.expertParts === 'number' ? layout.expertParts : layout.expertParts[expert]!;
    // a list one short and the next one long would hand experts each other's shards: each layer must match exactly
    if (hashes.length !== want) throw new ManifestError(`${at}.hashes lists ${hashes.length} shards, layer ${layer}'s experts take ${want}`);
    out.push(...hashes);
  });
  return out;
}

function isSourceInfo(s: unknown): s is SourceInfo {
  const v = s as SourceInfo;
  return typeof v === 'object' && v !== null && Array.isArray(v.dtypes) && v.dtypes.every((d) => typeof d === 'string') && (v.quantization === null || typeof v.quantization === 'string');
}

/**
 * Structural checks every consumer relies on, each failure naming the field: shard hashes and
 * sizes; tensors (dtype, aligned extent inside their shard, no two overlapping, length from shape
 * and dtype, and the set and shapes the config implies); experts (each routed expert of each MoE
 * layer once, on expert shards, bytes = their sizes); totals = the shard table's sums.
 */
export function validateManifest(m: Manifest): void {
  const fail = (msg: string): never => {
    throw new ManifestError(msg);
  };
  if (typeof m.config !== 'object' || m.config === null) fail('config missing');
  m.shards.forEach((s, i) => {
    if (!isHash(s.hash)) fail(`shards[${i}].hash is malformed`);
    intIn(s.size, `shards[${i}].size`, 0, Number.MAX_SAFE_INTEGER);
    if (s.kind !== 'dense' && s.kind !== 'expert') fail(`shards[${i}].kind must be dense or expert`);
  });
  checkTensors(m, fail);
  checkExperts(m, fail);
  for (const [name, h] of Object.entries(m.tokenizer)) if (!isHash(h)) fail(`tokenizer["${name}"] has a malformed hash`);
  if (m.layerLists !== undefined) {
    const moe = m.config.numLayers - new Set(m.config.moe.denseLayers).size;
    if (!Array.isArray(m.layerLists) || m.layerLists.length !== moe) fail(`layerLists must hold one hash per MoE layer (${moe})`);
    m.layerLists.forEach((h, i) => isHash(h) || fail(`layerLists[${i}] is a malformed hash`));
  }
  let dense = 0;
  let expert = 0;
  for (const s of m.shards) s.kind === 'dense' ? (dense += s.size) : (expert += s.size);
  if (m.totals.denseBytes !== dense) fail(`totals.denseBytes is ${m.totals.denseBytes}, the dense shards hold ${dense}`);
  if (m.totals.expertBytes !== expert) fail(`totals.expertBytes is ${m.totals.expertBytes}, the expert shards hold ${expert}`);
  if (m.totals.bytes !== dense + expert) fail(`totals.bytes is ${m.totals.bytes}, the shards hold ${dense + expert}`);
}

function checkTensors(m: Manifest, fail: (msg: string) => never): void {
  const { dense, experts } = architectureTensors(m.config);
  const wanted = new Map([...dense, ...experts].map((t) => [t.name, t.shape]));
  const seen = new Set<string>();
  m.tensors.forEach((t, i) => {
    const at = `tensors[${i}] (${String(t.name).slice(0, 80)})`;
    if (typeof t.name !== 'string') fail(`tensors[${i}].name is not a string`);
    const shape = wanted.get(t.name);
    if (!shape) fail(`${at} is not a tensor of this ${m.config.architecture} config`);
    if (seen.has(t.name)) fail(`${at} appears twice`);
    seen.add(t.name);
    if (!Array.isArray(t.shape) || t.shape.length !== shape!.length || t.shape.some((d, k) => d !== shape![k])) fail(`${at}.shape is ${JSON.stringify(t.shape)}, the config implies ${JSON.stringify(shape)}`);
    if (!DTYPES.includes(t.dtype)) fail(`${at}.dtype: unknown dtype ${String(t.dtype)}`);
    intIn(t.shard, `${at}.shard`, 0, Number.MAX_SAFE_INTEGER);
    const s = m.shards[t.shard];
    if (!s) fail(`${at} points at shard ${t.shard}, which does not exist`);
    intIn(t.offset, `${at}.offset`, 0, Number.MAX_SAFE_INTEGER);
    intIn(t.length, `${at}.length`, 0, Number.MAX_SAFE_INTEGER);
    if (t.offset % TENSOR_ALIGN !== 0) fail(`${at}.offset ${t.offset} is not a multiple of ${TENSOR_ALIGN}`);
    if (t.offset + t.length > s!.size) fail(`${at} lies outside its shard (bytes ${t.offset}..${t.offset + t.length} of ${s!.size})`);
    const { rows, cols } = matrixDims(t.shape);
    if (tensorByteLength(t.dtype, rows, cols) !== t.length) fail(`${at}.length ${t.length} does not match its shape and dtype`);
  });
  for (const name of wanted.keys()) if (!seen.has(name)) fail(`tensor ${name}, which the config implies, is missing`);
  // two tensors sharing bytes would silently read each other's weights
  const order = m.tensors.map((_, i) => i).sort((a, b) => m.tensors[a]!.shard - m.tensors[b]!.shard || m.tensors[a]!.offset - m.tensors[b]!.offset);
  for (let k = 1; k < order.length; k++) {
    const p = m.tensors[order[k - 1]!]!;
    const t = m.tensors[order[k]!]!;
    if (p.shard === t.shard && t.length > 0 && p.offset + p.length > t.offset) fail(`tensors ${p.name} and ${t.name} overlap in shard ${t.shard}`);
  }
}

function checkExperts(m: Manifest, fail: (msg: string) => never): void {
  const cfg = m.config;
  const seen = new Set<string>();
  m.experts.forEach((e, i) => {
    const at = `experts[${i}]`;
    intIn(e.layer, `${at}.layer`, 0, cfg.numLayers - 1);
    intIn(e.expert, `${at}.expert`, 0, cfg.moe.numExperts - 1);
    if (!isMoeLayer(cfg, e.layer)) fail(`${at}: layer ${e.layer} is dense in the config`);
    const key = `${e.layer}/${e.expert}`;
    if (seen.has(key)) fail(`${at}: expert ${key} appears twice`);
    seen.add(key);
    if (!Array.isArray(e.shards) || e.shards.length === 0) fail(`${at}.shards is empty`);
    let bytes = 0;
    for (const s of e.shards) {
      if (!Number.isSafeInteger(s) || !m.shards[s]) fail(`expert ${key} points at missing shard ${s}`);
      if (m.shards[s]!.kind !== 'expert') fail(`expert ${key} points at shard ${s}, which is not an expert shard`);
      bytes += m.shards[s]!.size;
    }
    if (e.bytes !== bytes) fail(`${at}.bytes is ${e.bytes}, its shards hold ${bytes}`);
  });
  const moeLayers = cfg.numLayers - new Set(cfg.moe.denseLayers).size;
  if (seen.size !== moeLayers * cfg.moe.numExperts) fail(`experts lists ${seen.size} routed experts, the config implies ${moeLayers * cfg.moe.numExperts}`);
}

/** The compact layout's fields, and whether the hashed shards can hold what the config implies, before expanding. */
function checkLayout(layout: NonNullable<Encoded['layout']>, config: ModelConfig, shardCount: number): void {
  const sizes = (v: unknown, path: string): void => {
    if (!Array.isArray(v) || v.length > shardCount) throw new ManifestError(`layout.${path} must be a list of at most ${shardCount} sizes`);
    v.forEach((x, i) => intIn(x, `layout.${path}[${i}]`, 0, Number.MAX_SAFE_INTEGER));
  };
  sizes(layout.denseSizes, 'denseSizes');
  sizes(layout.splitSizes, 'splitSizes');
  const experts = checkExpertParts(layout, config);
  // every routed expert is at least one shard: a config claiming more than are hashed is refused before any table is built
  if (experts + layout.denseSizes.length > shardCount) throw new ManifestError(`config implies ${experts} expert shards and ${layout.denseSizes.length} dense ones, only ${shardCount} are hashed`);
}

/** layout.expertParts: one count for all, or one per routed expert; returns the number of routed experts. */
function checkExpertParts(layout: NonNullable<Encoded['layout']>, config: ModelConfig): number {
  if (typeof layout !== 'object' || layout === null) throw new ManifestError('layout must be an object');
  const moeLayers = config.numLayers - new Set(config.moe.denseLayers).size;
  const experts = moeLayers * config.moe.numExperts;
  const parts = layout.expertParts;
  if (typeof parts === 'number') intIn(parts, 'layout.expertParts', 1, 255);
  else if (!(parts instanceof Uint8Array) || parts.length !== experts) throw new ManifestError(`layout.expertParts must be 1 or ${experts} part counts`);
  return experts;
}

/** The compact layout of a manifest, if it has the shape convert writes (dense shards first, experts after in order). */
function compactLayout(m: Manifest): Encoded['layout'] | null {
  const denseCount = m.shards.findIndex((s) => s.kind === 'expert');
  const D = denseCount === -1 ? m.shards.length : denseCount;
  const parts = m.experts.map((e) => e.shards.length);
  if (parts.some((p) => p < 1 || p > 255)) return null;
  const splitSizes: number[] = [];
  for (const e of m.experts) if (e.shards.length > 1) for (const s of e.shards) splitSizes.push(m.shards[s]?.size ?? -1);
  return {
    denseSizes: m.shards.slice(0, D).map((s) => s.size),
    expertParts: parts.every((p) => p === 1) ? 1 : Uint8Array.from(parts),
    splitSizes,
  };
}

/** Rebuilds tensors, shards (sizes, kinds) and experts from config + compact layout + hashes. */
function expand(m: Manifest, layout: NonNullable<Encoded['layout']>): Pick<Manifest, 'tensors' | 'shards' | 'experts'> {
  const { config, quant } = m;
  const expertQuant = m.expertQuant ?? quant;
  const hashes = m.shards.map((s) => s.hash);
  const shards: ShardEntry[] = [];
  const tensors: TensorEntry[] = [];
  const experts: ExpertEntry[] = [];
  const place = (specs: TensorSpec[], sizes: number[], kind: ShardEntry['kind']): number[] => {
    const first = shards.length;
    for (const size of sizes) {
      if (shards.length >= hashes.length) throw new ManifestError(`layout needs more shards than the ${hashes.length} hashed`);
      shards.push({ hash: hashes[shards.length]!, size, kind });
    }
    let part = 0;
    let cursor = 0;
    for (const spec of specs) {
      const dtype = storedDtype(spec, quant, expertQuant);
      const { rows, cols } = matrixDims(spec.shape);
      const length = tensorByteLength(dtype, rows, cols);
      let offset = alignUp(cursor);
      if (cursor > 0 && offset + length > sizes[part]!) {
        part++;
        offset = 0;
      }
      if (part >= sizes.length) throw new ManifestError(`tensor ${spec.name} does not fit the layout's shards`);
      tensors.push({ name: spec.name, shape: [...spec.shape], dtype, shard: first + part, offset, length });
      cursor = offset + length;
    }
    return sizes.map((_, i) => first + i);
  };
  const { dense } = architectureTensors(config);
  place(dense, layout.denseSizes, 'dense');
  let split = 0;
  let index = 0;
  for (let l = 0; l < config.numLayers; l++) {
    if (!isMoeLayer(config, l)) continue;
    for (let e = 0; e < config.moe.numExperts; e++, index++) {
      const parts = typeof layout.expertParts === 'number' ? layout.expertParts : layout.expertParts[index];
      if (parts === undefined) throw new ManifestError('expert layout is shorter than the config says');
      const specs = expertTensors(config, l, e);
      let sizes: number[];
      if (parts === 1) {
        let end = 0;
        for (const s of specs) {
          const { rows, cols } = matrixDims(s.shape);
          end = (end === 0 ? 0 : alignUp(end)) + tensorByteLength(storedDtype(s, quant, expertQuant), rows, cols);
        }
        sizes = [end];
      } else sizes = layout.splitSizes.slice(split, (split += parts));
      const ids = place(specs, sizes, 'expert');
      experts.push({ layer: l, expert: e, shards: ids, bytes: sizes.reduce((a, b) => a + b, 0) });
    }
  }
  if (shards.length !== hashes.length) throw new ManifestError(`layout accounts for ${shards.length} shards, ${hashes.length} are hashed`);
  return { tensors, shards, experts };
}

function fromTables(t: NonNullable<Encoded['tables']>, hashes: string[]): Pick<Manifest, 'tensors' | 'shards' | 'experts'> {
  const list = (v: unknown, path: string, n?: number): void => {
    const ok = Array.isArray(v) || v instanceof Uint8Array;
    if (!ok || (n !== undefined && (v as unknown[]).length !== n)) throw new ManifestError(`tables.${path} must be a list${n === undefined ? '' : ` of ${n}`}`);
  };
  if (typeof t !== 'object' || t === null) throw new ManifestError('tables must be an object');
  list(t.sizes, 'sizes', hashes.length);
  list(t.kinds, 'kinds', hashes.length);
  const c = t.tensors;
  if (typeof c !== 'object' || c === null) throw new ManifestError('tables.tensors must be an object');
  list(c.names, 'tensors.names');
  const n = c.names.length;
  for (const k of ['shapes', 'dtypes', 'shard', 'offset', 'length'] as const) list(c[k], `tensors.${k}`, n);
  const x = t.experts;
  if (typeof x !== 'object' || x === null) throw new ManifestError('tables.experts must be an object');
  list(x.layer, 'experts.layer');
  for (const k of ['expert', 'shards', 'bytes'] as const) list(x[k], `experts.${k}`, x.layer.length);
  return {
    shards: hashes.map((hash, i) => ({ hash, size: t.sizes[i]!, kind: t.kinds[i] === 0 ? 'dense' : 'expert' })),
    tensors: c.names.map((name, i) => ({
      name,
      shape: c.shapes[i]!,
      dtype: DTYPES[c.dtypes[i]!] ?? ('?' as WeightDtype),
      shard: c.shard[i]!,
      offset: c.offset[i]!,
      length: c.length[i]!,
    })),
    experts: t.experts.layer.map((layer, i) => ({ layer, expert: t.experts.expert[i]!, shards: t.experts.shards[i]!, bytes: t.experts.bytes[i]! })),
  };
}

function toColumns(tensors: TensorEntry[]): TensorColumns {
  return {
    names: tensors.map((t) => t.name),
    shapes: tensors.map((t) => t.shape),
    dtypes: Uint8Array.from(tensors, (t) => DTYPES.indexOf(t.dtype)),
    shard: tensors.map((t) => t.shard),
    offset: tensors.map((t) => t.offset),
    length: tensors.map((t) => t.length),
  };
}

function hexToBytes(hexes: string[]): Uint8Array {
  const out = new Uint8Array(hexes.length * 32);
  hexes.forEach((h, i) => {
    if (!isHash(h)) throw new ManifestError(`malformed hash ${JSON.stringify(h)}`);
    for (let j = 0; j < 32; j++) out[i * 32 + j] = parseInt(h.slice(j * 2, j * 2 + 2), 16);
  });
  return out;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function bytesToHexList(bytes: unknown, what: string): string[] {
  if (!(bytes instanceof Uint8Array) || bytes.length % 32 !== 0) throw new ManifestError(`${what} are not a whole number of 32-byte hashes`);
  const out: string[] = [];
  for (let i = 0; i < bytes.length; i += 32) {
    let s = '';
    for (let j = 0; j < 32; j++) s += HEX[bytes[i + j]!];
    out.push(s);
  }
  return out;
}

/** Structural equality of plain data (objects, arrays, primitives). */
function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) if (!deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  return true;
}
