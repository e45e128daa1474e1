/**
 * The reference backend: every op as a plain loop over f32 data, accumulated in f64 (at least as
 * accurate as the GPU's f32 accumulation, so it bounds the GPU's error from above). Slow, but a
 * working engine backend for tiny models and the oracle every WGSL kernel is tested against.
 */
import type { WeightDtype } from '../../manifests/index.ts';
import type { Act, AttentionParams, Backend, DeviceBytes, RopeParams, Weight } from '../backend.ts';
import { checkWeight, KernelError } from '../layout.ts';
import * as v from '../validate.ts';
import { RowDecoder } from './decode.ts';
import { jsMemory, type HostMemory, type HostRegion } from './memory.ts';

class CpuBytes implements DeviceBytes {
  readonly region: HostRegion;
  released = false;
  constructor(region: HostRegion) {
    this.region = region;
  }
  get byteLength(): number {
    return this.region.byteLength;
  }
  get bytes(): Uint8Array {
    return this.region.bytes();
  }
}

interface Storage {
  region: HostRegion;
  freed: boolean;
}

class CpuAct implements Act {
  readonly rows: number;
  readonly cols: number;
  readonly storage: Storage;
  constructor(rows: number, cols: number, storage: Storage) {
    this.rows = rows;
    this.cols = cols;
    this.storage = storage;
  }
  get data(): Float32Array {
    if (this.storage.freed) throw new KernelError(`activation [${this.rows}, ${this.cols}] was used after freeAct`);
    return this.storage.region.floats();
  }
}

class CpuWeight implements Weight {
  readonly src: DeviceBytes;
  readonly byteOffset: number;
  readonly dtype: WeightDtype;
  readonly rows: number;
  readonly cols: number;
  private cached: { buffer: ArrayBufferLike; decoder: RowDecoder } | null = null;
  constructor(src: CpuBytes, byteOffset: number, dtype: WeightDtype, rows: number, cols: number) {
    this.src = src;
    this.byteOffset = byteOffset;
    this.dtype = dtype;
    this.rows = rows;
    this.cols = cols;
  }
  /** Rebuilt when the bytes' buffer changes (a WebAssembly memory that grew). */
  get decoder(): RowDecoder {
    const bytes = (this.src as CpuBytes).bytes;
    if (this.cached?.buffer !== bytes.buffer) {
      this.cached = { buffer: bytes.buffer, decoder: new RowDecoder(bytes, this.byteOffset, this.dtype, this.rows, this.cols) };
    }
    return this.cached.decoder;
  }
}

function asAct(a: Act): CpuAct {
  if (!(a instanceof CpuAct)) throw new KernelError('activation does not belong to the CPU backend');
  return a;
}

function asWeight(w: Weight): CpuWeight {
  if (!(w instanceof CpuWeight)) throw new KernelError('weight does not belong to the CPU backend');
  if ((w.src as CpuBytes).released) throw new KernelError('weight bytes were released');
  return w;
}

const silu = (g: number): number => g / (1 + Math.exp(-g));

/** transformers' GptOssExperts._apply_gate on one element. */
function clampedSwiglu(gate: number, up: number, alpha: number, limit: number): number {
  const g = Math.min(gate, limit);
  const u = Math.min(Math.max(up, -limit), limit);
  return (u + 1) * (g / (1 + Math.exp(-alpha * g)));
}

/** The f32 storage of a CPU-backend activation (the WASM backend passes its address to its kernels). */
export function hostFloats(a: Act): Float32Array {
  return asAct(a).data;
}

/** The bytes a CPU-backend weight lives in; the weight starts at `w.byteOffset` into them. */
export function hostWeightBytes(w: Weight): Uint8Array {
  return (asWeight(w).src as CpuBytes).bytes;
}

/** The bytes of a CPU-backend upload. */
export function hostBytes(b: DeviceBytes): Uint8Array {
  if (!(b instanceof CpuBytes) || b.released) throw new KernelError('bytes do not belong to the CPU backend or were released');
  return b.bytes;
}

/**
 * The reference backend over `memory` (the JS heap unless a caller brings its own, as the WASM
 * backend does).
 */
export function createCpuBackend(memory: HostMemory = jsMemory): Backend {
  let bytesHeld = 0;

  function matmulRows(x: Float32Array, xStride: number, xCol: number, M: number, K: number, w: CpuWeight, row0: number, N: number, out: Float32Array, outStride: number, outCol: number, accumulate: boolean): void {
    const wr = new Float32Array(K);
    const decoder = w.decoder;
    for (let n = 0; n < N; n++) {
      decoder.decode(row0 + n, wr);
      for (let m = 0; m < M; m++) {
        const xo = m * xStride + xCol;
        let s = 0;
        for (let k = 0; k < K; k++) s += x[xo + k]! * wr[k]!;
        const o = m * outStride + outCol + n;
        out[o] = accumulate ? out[o]! + s : s;
      }
    }
  }

  const backend: Backend = {
    name: 'cpu',

    upload(bytes) {
      const region = memory.alloc((bytes.byteLength + 3) & ~3);
      region.bytes().set(bytes);
      bytesHeld += region.byteLength;
      return new CpuBytes(region);
    },
    releaseBytes(b) {
      const c = b as CpuBytes;
      if (!c.released) {
        bytesHeld -= c.region.byteLength;
        memory.free(c.region);
      }
      c.released = true;
    },
    weight(src, byteOffset, dtype, rows, cols) {
      if (!(src instanceof CpuBytes)) throw new KernelError('weight bytes do not belong to the CPU backend');
      checkWeight(src.byteLength, byteOffset, dtype, rows, cols);
      return new CpuWeight(src, byteOffset, dtype, rows, cols);
    },

    act(rows, cols, zeroed = true) {
      v.checkActShape(rows, cols);
      bytesHeld += rows * cols * 4;
      const region = memory.alloc(rows * cols * 4);
      if (!zeroed) region.floats().fill(NaN);
      return new CpuAct(rows, cols, { region, freed: false });
    },
    view(a, rows, cols) {
      const c = asAct(a);
      v.checkActShape(rows, cols);
      if (rows * cols !== c.rows * c.cols) throw new KernelError(`view [${rows}, ${cols}] of [${c.rows}, ${c.cols}] changes the element count`);
      return new CpuAct(rows, cols, c.storage);
    },
    freeAct(a) {
      const c = asAct(a);
      if (!c.storage.freed) {
        bytesHeld -= c.storage.region.byteLength;
        memory.free(c.storage.region);
      }
      c.storage.freed = true;
    },
    write(a, data, rowOffset = 0) {
      const c = asAct(a);
      v.checkWrite(c, data.length, rowOffset);
      c.data.set(data, rowOffset * c.cols);
    },
    read(a) {
      return Promise.resolve(asAct(a).data.slice());
    },
    bytesInUse() {
      return bytesHeld;
    },

    embed(ids, table, out) {
      v.checkEmbed(ids, table, out);
      const w = asWeight(table);
      const o = asAct(out).data;
      const row = new Float32Array(w.cols);
      const decoder = w.decoder;
      ids.forEach((id, i) => {
        decoder.decode(id, row);
        o.set(row, i * w.cols);
      });
    },
    matmul(x, w, out, accumulate = false) {
      v.checkMatmul(x, w, out);
      matmulRows(asAct(x).data, x.cols, 0, x.rows, w.cols, asWeight(w), 0, w.rows, asAct(out).data, out.cols, 0, accumulate);
    },
    matmulHeads(x, w, out, heads) {
      v.checkMatmulHeads(x, w, out, heads);
      const n = w.rows / heads;
      for (let h = 0; h < heads; h++) {
        matmulRows(asAct(x).data, x.cols, h * w.cols, x.rows, w.cols, asWeight(w), h * n, n, asAct(out).data, out.cols, h * n, false);
      }
    },
    rmsnorm(x, w, out, eps) {
      v.checkRmsnorm(x, w, out);
      const d = w.cols;
      const wv = new Float32Array(d);
      asWeight(w).decoder.decode(0, wv);
      const xs = asAct(x).data;
      const os = asAct(out).data;
      for (let r = 0; r < (x.rows * x.cols) / d; r++) {
        let ss = 0;
        for (let c = 0; c < d; c++) ss += xs[r * d + c]! ** 2;
        const inv = 1 / Math.sqrt(Math.fround(ss / d) + eps);
        for (let c = 0; c < d; c++) os[r * d + c] = xs[r * d + c]! * inv * wv[c]!;
      }
    },
    rope(x, p) {
      v.checkRope(x, p);
      ropeInPlace(asAct(x), p);
    },
    swiglu(gate, up, out) {
      v.checkSameShape('swiglu', gate, up, out);
      const g = asAct(gate).data;
      const u = asAct(up).data;
      const o = asAct(out).data;
      for (let i = 0; i < o.length; i++) o[i] = silu(g[i]!) * u[i]!;
    },
    swigluClamped(gate, up, out, alpha, limit) {
      v.checkSameShape('swigluClamped', gate, up, out);
      const g = asAct(gate).data;
      const u = asAct(up).data;
      const o = asAct(out).data;
      for (let i = 0; i < o.length; i++) o[i] = clampedSwiglu(g[i]!, u[i]!, alpha, limit);
    },
    addBias(x, bias, out) {
      v.checkAddBias(x, bias, out);
      const b = new Float32Array(x.cols);
      asWeight(bias).decoder.decode(0, b);
      const xs = asAct(x).data;
      const os = asAct(out).data;
      for (let i = 0; i < os.length; i++) os[i] = xs[i]! + b[i % x.cols]!;
    },
    add(a, b, out) {
      v.checkSameShape('add', a, b, out);
      const x = asAct(a).data;
      const y = asAct(b).data;
      const o = asAct(out).data;
      for (let i = 0; i < o.length; i++) o[i] = x[i]! + y[i]!;
    },
    copy(src, srcRow, srcCol, dst, dstRow, dstCol, rows, cols) {
      v.checkCopy(src, srcRow, srcCol, dst, dstRow, dstCol, rows, cols);
      const s = asAct(src).data;
      const d = asAct(dst).data;
      const tmp = new Float32Array(cols);
      for (let i = 0; i < rows; i++) {
        const so = (srcRow + i) * src.cols + srcCol;
        tmp.set(s.subarray(so, so + cols));
        d.set(tmp, (dstRow + i) * dst.cols + dstCol);
      }
    },
    gather(x, rows, out) {
      v.checkGather(x, rows, out);
      const s = asAct(x).data;
      const o = asAct(out).data;
      rows.forEach((r, i) => o.set(s.subarray(r * x.cols, (r + 1) * x.cols), i * x.cols));
    },
    scatterAdd(y, rows, scale, out) {
      v.checkScatterAdd(y, rows, scale, out);
      const s = asAct(y).data;
      const o = asAct(out).data;
      const n = out.cols;
      rows.forEach((r, i) => {
        for (let c = 0; c < n; c++) o[r * n + c] = o[r * n + c]! + scale[i]! * s[i * n + c]!;
      });
    },
    attention(q, k, vc, out, p) {
      v.checkAttention(q, k, vc, out, p);
      let sinks: Float32Array | null = null;
      if (p.sinks) asWeight(p.sinks).decoder.decode(0, (sinks = new Float32Array(p.heads)));
      attentionRef(asAct(q), asAct(k), asAct(vc), asAct(out), p, sinks);
    },
    argmax(x) {
      const d = asAct(x).data;
      const res = new Uint32Array(x.rows);
      for (let r = 0; r < x.rows; r++) {
        let best = 0;
        let bv = -Infinity;
        for (let c = 0; c < x.cols; c++) {
          const val = d[r * x.cols + c]!;
          if (val > bv) {
            bv = val;
            best = c;
          }
        }
        res[r] = best;
      }
      return Promise.resolve(res);
    },
    finiteRows(x) {
      const d = asAct(x).data;
      const res: boolean[] = [];
      for (let r = 0; r < x.rows; r++) {
        let ok = true;
        for (let c = 0; c < x.cols && ok; c++) ok = Number.isFinite(d[r * x.cols + c]!);
        res.push(ok);
      }
      return Promise.resolve(res);
    },
    sync() {
      return Promise.resolve();
    },
  };
  return backend;
}

function ropeInPlace(x: CpuAct, p: RopeParams): void {
  const invFreq = v.ropeInvFreq(p);
  const half = p.ropeDim / 2;
  const scaling = p.scaling ?? 1;
  const d = x.data;
  for (let r = 0; r < x.rows; r++) {
    const pos = p.startPos + r;
    for (let j = 0; j < half; j++) {
      const angle = Math.fround(pos * invFreq[j]!);
      const cos = Math.fround(Math.fround(Math.cos(angle)) * scaling);
      const sin = Math.fround(Math.fround(Math.sin(angle)) * scaling);
      for (let h = 0; h < p.heads; h++) {
        const base = r * x.cols + h * p.headStride + p.ropeOffset;
        const i0 = base + (p.interleaved ? 2 * j : j);
        const i1 = base + (p.interleaved ? 2 * j + 1 : j + half);
        const a = d[i0]!;
        const b = d[i1]!;
        d[i0] = a * cos - b * sin;
        d[i1] = b * cos + a * sin;
      }
    }
  }
}

/** A sink is one more logit in the softmax whose value vector is zero. */
function attentionRef(q: CpuAct, k: CpuAct, vc: CpuAct, out: CpuAct, p: AttentionParams, sinks: Float32Array | null): void {
  const group = p.heads / p.kvHeads;
  const vOff = p.vColOffset ?? 0;
  const rows = p.cacheRows ?? Infinity;
  const qd = q.data;
  const kd = k.data;
  const vd = vc.data;
  const od = out.data;
  const scores = new Float64Array(p.startPos + q.rows);
  for (let i = 0; i < q.rows; i++) {
    const pos = p.startPos + i;
    const lo = p.window === undefined ? 0 : Math.max(0, pos - p.window + 1);
    const n = pos + 1 - lo;
    for (let h = 0; h < p.heads; h++) {
      const g = Math.floor(h / group);
      const qo = i * q.cols + h * p.dk;
      const sink = sinks ? sinks[h]! : -Infinity;
      let max = sink;
      for (let j = 0; j < n; j++) {
        const ko = ((lo + j) % rows) * k.cols + g * p.dk;
        let s = 0;
        for (let c = 0; c < p.dk; c++) s += qd[qo + c]! * kd[ko + c]!;
        scores[j] = s * p.scale;
        if (scores[j]! > max) max = scores[j]!;
      }
      let sum = sinks ? Math.exp(sink - max) : 0;
      for (let j = 0; j < n; j++) {
        scores[j] = Math.exp(scores[j]! - max);
        sum += scores[j]!;
      }
      const oo = i * out.cols + h * p.dv;
      for (let c = 0; c < p.dv; c++) {
        let acc = 0;
        for (let j = 0; j < n; j++) acc += scores[j]! * vd[((lo + j) % rows) * vc.cols + vOff + g * p.dv + c]!;
        od[oo + c] = acc / sum;
      }
    }
  }
}
