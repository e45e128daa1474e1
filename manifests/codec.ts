import { Packr } from 'msgpackr';
import { ManifestError } from './errors.ts';
import { isHash } from './hash.ts';
import { alignUp, expertTensors, architectureTensors, isMoeLayer, storedDtype, type TensorSpec } from './layout.ts';
import { WEIGHT_DTYPES } from './formats/index.ts';
import { matrixDims, tensorByteLength } from './quant.ts';
import type { ExpertEntry, Manifest, ModelConfig, ShardEntry, SourceInfo, TensorEntry, WeightDtype } from './types.ts';

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
 * Hashes are one binary string, 32 bytes per shard.
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
  if (layout && deepEqual(expand(m, layout), { tensors: m.tensors, shards: m.shards, experts: m.experts })) enc.layout = layout;
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

export function decodeManifest(bytes: Uint8Array, source = 'manifest'): Manifest {
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
    if (enc.expertQuant !== undefined && !DTYPES.includes(enc.expertQuant)) throw new Error(`unknown expert quant ${String(enc.expertQuant)}`);
    if (enc.source !== undefined && !isSourceInfo(enc.source)) throw new Error('source record is malformed');
    const hashes = bytesToHexList(enc.hashes, 'shard hashes');
    const tokHashes = bytesToHexList(enc.tokenizer?.hashes, 'tokenizer hashes');
    if (!Array.isArray(enc.tokenizer.names) || tokHashes.length !== enc.tokenizer.names.length) throw new Error('tokenizer table is inconsistent');
    const tokenizer: Record<string, string> = {};
    enc.tokenizer.names.forEach((n, i) => (tokenizer[String(n)] = tokHashes[i]!));
    const base = {
      format: 'rdrr' as const,
      version: 1 as const,
      name: String(enc.name),
      config: enc.config,
      quant: enc.quant,
      ...(enc.expertQuant !== undefined ? { expertQuant: enc.expertQuant } : {}),
      ...(enc.source !== undefined ? { source: enc.source } : {}),
    };
    let tables: Pick<Manifest, 'tensors' | 'shards' | 'experts'>;
    if (enc.layout) tables = expand({ ...base, tensors: [], shards: hashes.map((hash) => ({ hash, size: 0, kind: 'dense' })), experts: [], tokenizer, totals: enc.totals }, enc.layout);
    else if (enc.tables) tables = fromTables(enc.tables, hashes);
    else throw new Error('neither layout nor tables present');
    const m: Manifest = { ...base, ...tables, tokenizer, totals: enc.totals };
    validateManifest(m);
    return m;
  } catch (err) {
    if (err instanceof ManifestError) throw new ManifestError(`${source}: ${err.message}`, { cause: err });
    throw new ManifestError(`${source}: malformed manifest: ${(err as Error).message}`, { cause: err });
  }
}

function isSourceInfo(s: unknown): s is SourceInfo {
  const v = s as SourceInfo;
  return typeof v === 'object' && v !== null && Array.isArray(v.dtypes) && v.dtypes.every((d) => typeof d === 'string') && (v.quantization === null || typeof v.quantization === 'string');
}

/** Structural checks every consumer relies on: shard indices, extents, hashes, dtypes. */
export function validateManifest(m: Manifest): void {
  const fail = (msg: string): never => {
    throw new ManifestError(msg);
  };
  if (typeof m.config !== 'object' || m.config === null) fail('config missing');
  m.shards.forEach((s, i) => {
    if (!isHash(s.hash)) fail(`shard ${i} has a malformed hash`);
    if (!Number.isSafeInteger(s.size) || s.size < 0) fail(`shard ${i} has a bad size`);
  });
  for (const t of m.tensors) {
    const s = m.shards[t.shard];
    if (!s) fail(`tensor ${t.name} points at shard ${t.shard}, which does not exist`);
    if (!DTYPES.includes(t.dtype)) fail(`tensor ${t.name} has unknown dtype ${t.dtype}`);
    if (t.offset < 0 || t.offset + t.length > s!.size) fail(`tensor ${t.name} lies outside its shard`);
    const { rows, cols } = matrixDims(t.shape);
    if (tensorByteLength(t.dtype, rows, cols) !== t.length) fail(`tensor ${t.name} length does not match its shape and dtype`);
  }
  for (const e of m.experts) for (const s of e.shards) if (!m.shards[s]) fail(`expert ${e.layer}/${e.expert} points at missing shard ${s}`);
  for (const h of Object.values(m.tokenizer)) if (!isHash(h)) fail('a tokenizer blob has a malformed hash');
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
  if (t.sizes.length !== hashes.length || t.kinds.length !== hashes.length) throw new ManifestError('shard table length differs from the hash count');
  const c = t.tensors;
  const n = c.names.length;
  if ([c.shapes, c.dtypes, c.shard, c.offset, c.length].some((col) => col.length !== n)) throw new ManifestError('tensor columns differ in length');
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
