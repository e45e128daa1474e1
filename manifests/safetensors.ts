import { readdir, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { CheckpointError } from './errors.ts';
import { bf16ToF32Into, f16Table } from './f16.ts';
import { fp8Table } from './fp8.ts';
import { openRegularFile, readRegularFile } from './regular-file.ts';

/** Element sizes of the dtypes a header may declare; other names are refused while parsing the header. */
const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1, F8_E8M0: 1 };
const READABLE = new Set(['F32', 'F16', 'BF16']);
/** A header larger than this is not a safetensors header (the format caps it at 100 MB). */
const MAX_HEADER = 100 * 1024 * 1024;

export interface SafetensorsTensor {
  name: string;
  file: string;
  dtype: string;
  shape: number[];
  /** Absolute byte range of the data in the file. */
  start: number;
  end: number;
}

/** The tensors of a Hugging Face checkpoint (one safetensors file, or several with an index), read by byte range. */
export class Checkpoint {
  readonly tensors: Map<string, SafetensorsTensor>;
  private readonly handles = new Map<string, FileHandle>();
  private constructor(tensors: Map<string, SafetensorsTensor>) {
    this.tensors = tensors;
  }

  static async open(dir: string): Promise<Checkpoint> {
    const files = await checkpointFiles(dir);
    const tensors = new Map<string, SafetensorsTensor>();
    for (const file of files) {
      for (const t of await readHeader(file)) {
        const other = tensors.get(t.name);
        if (other) throw new CheckpointError(`tensor ${t.name} is in both ${other.file} and ${t.file}`);
        tensors.set(t.name, t);
      }
    }
    return new Checkpoint(tensors);
  }

  /** `count` rows of `cols` values starting at row `first` of a tensor viewed as [rows, cols], as f32. */
  async readRows(t: SafetensorsTensor, first: number, count: number, cols: number): Promise<Float32Array> {
    if (fp8Table(t.dtype)) throw new CheckpointError(`${t.file}: tensor ${t.name} is ${t.dtype}, which is read only with its block scales (${t.name}_scale_inv)`);
    if (!READABLE.has(t.dtype)) throw new CheckpointError(`${t.file}: tensor ${t.name} has dtype ${t.dtype}; only F32, F16, BF16 (and F8_E4M3/F8_E5M2 with block scales) are supported`);
    const width = DTYPE_BYTES[t.dtype]!;
    const raw = await this.readBytes(t, first * cols * width, count * cols * width);
    const n = count * cols;
    if (t.dtype === 'F32') return new Float32Array(raw.buffer, 0, n);
    const halves = new Uint16Array(raw.buffer, 0, n);
    const out = new Float32Array(n);
    if (t.dtype === 'BF16') bf16ToF32Into(halves, out);
    else {
      const table = f16Table();
      for (let i = 0; i < n; i++) out[i] = table[halves[i]!]!;
    }
    return out;
  }

  /** `length` bytes of a tensor's data from byte `offset` of it, as stored (a fresh, 0-based buffer). */
  async readBytes(t: SafetensorsTensor, offset: number, length: number): Promise<Uint8Array> {
    const start = t.start + offset;
    if (offset < 0 || start + length > t.end) throw new CheckpointError(`${t.file}: read past the end of tensor ${t.name}`);
    const raw = new Uint8Array(length);
    const fh = await this.handle(t.file);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(raw, done, length - done, start + done);
      if (bytesRead === 0) throw new CheckpointError(`${t.file}: file ends inside tensor ${t.name} (truncated)`);
      done += bytesRead;
    }
    return raw;
  }

  async close(): Promise<void> {
    await Promise.all([...this.handles.values()].map((h) => h.close()));
    this.handles.clear();
  }

  private async handle(file: string): Promise<FileHandle> {
    let h = this.handles.get(file);
    if (!h) {
      h = await openRegularFile(file);
      this.handles.set(file, h);
    }
    return h;
  }
}

async function checkpointFiles(dir: string): Promise<string[]> {
  const indexPath = join(dir, 'model.safetensors.index.json');
  let index: unknown = null;
  try {
    index = JSON.parse(new TextDecoder().decode(await readRegularFile(indexPath)));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new CheckpointError(`${indexPath}: not readable JSON (${(err as Error).message})`, { cause: err });
  }
  if (index !== null) {
    const map = (index as { weight_map?: unknown }).weight_map;
    if (typeof map !== 'object' || map === null) throw new CheckpointError(`${indexPath}: no "weight_map"`);
    const names = new Set(Object.values(map as Record<string, unknown>));
    for (const n of names) if (typeof n !== 'string' || basename(n) !== n) throw new CheckpointError(`${indexPath}: bad file name ${JSON.stringify(n)} in weight_map`);
    return [...(names as Set<string>)].sort().map((n) => join(dir, n));
  }
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    throw new CheckpointError(`${dir}: cannot read the directory (${(err as Error).message})`, { cause: err });
  }
  const st = entries.filter((e) => e.endsWith('.safetensors')).sort();
  if (st.length === 0) throw new CheckpointError(`${dir}: no .safetensors file`);
  if (st.length > 1) throw new CheckpointError(`${dir}: ${st.length} .safetensors files but no model.safetensors.index.json`);
  return [join(dir, st[0]!)];
}

/** Parses and checks a safetensors header: every tensor's byte range must match its shape and lie in the file. */
export async function readHeader(file: string): Promise<SafetensorsTensor[]> {
  let fh: FileHandle;
  try {
    fh = await openRegularFile(file);
  } catch (err) {
    throw new CheckpointError(`${file}: cannot open (${(err as Error).message})`, { cause: err });
  }
  try {
    const size = (await fh.stat()).size;
    if (size < 8) throw new CheckpointError(`${file}: truncated (${size} bytes, no header length)`);
    const lenBuf = Buffer.alloc(8);
    await fh.read(lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > MAX_HEADER) throw new CheckpointError(`${file}: header length ${headerLen} is not plausible (malformed safetensors)`);
    if (8 + headerLen > size) throw new CheckpointError(`${file}: truncated (header says ${headerLen} bytes, file has ${size - 8} after the length)`);
    const hb = Buffer.alloc(headerLen);
    await fh.read(hb, 0, headerLen, 8);
    let header: unknown;
    try {
      header = JSON.parse(hb.toString('utf8'));
    } catch (err) {
      throw new CheckpointError(`${file}: header is not valid JSON (malformed safetensors)`, { cause: err });
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new CheckpointError(`${file}: header is not a JSON object`);
    const dataStart = 8 + headerLen;
    const out: SafetensorsTensor[] = [];
    for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') continue;
      const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      const bad = (why: string): never => {
        throw new CheckpointError(`${file}: tensor ${name}: ${why}`);
      };
      if (typeof e !== 'object' || e === null) bad('entry is not an object');
      if (typeof e.dtype !== 'string' || !(e.dtype in DTYPE_BYTES)) bad(`unknown dtype ${JSON.stringify(e.dtype)}`);
      if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) bad('bad shape');
      const offs = e.data_offsets;
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0)) bad('bad data_offsets');
      const [s, en] = offs as [number, number];
      const shape = e.shape as number[];
      const expected = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[e.dtype as string]!;
      if (en - s !== expected) bad(`data_offsets span ${en - s} bytes, shape ${JSON.stringify(shape)} of ${String(e.dtype)} needs ${expected}`);
      if (dataStart + en > size) bad(`data ends at byte ${dataStart + en}, past the end of the file (${size} bytes): truncated`);
      out.push({ name, file, dtype: e.dtype as string, shape, start: dataStart + s, end: dataStart + en });
    }
    refuseOverlaps(out, file);
    return out;
  } finally {
    await fh.close();
  }
}

/** Two tensors sharing bytes would make one silently alias the other: refuse, naming both. */
function refuseOverlaps(tensors: SafetensorsTensor[], file: string): void {
  const byStart = tensors.filter((t) => t.end > t.start).sort((a, b) => a.start - b.start);
  for (let i = 1; i < byStart.length; i++) {
    const prev = byStart[i - 1]!;
    const t = byStart[i]!;
    if (t.start < prev.end) {
      throw new CheckpointError(`${file}: tensors ${prev.name} and ${t.name} overlap (bytes [${prev.start}, ${prev.end}) and [${t.start}, ${t.end}) of the file)`);
    }
  }
}
