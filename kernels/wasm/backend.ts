/**
 * The WASM backend: the reference CPU backend's memory layout and ops, with matmul, matmulHeads
 * and attention replaced by WebAssembly SIMD128 kernels (kernels/wasm/as/kernels.ts) that split
 * their output rows across worker threads sharing one WebAssembly memory. Without
 * SharedArrayBuffer (a page that is not cross-origin isolated) or a way to start workers it runs
 * single-threaded and says why in `threading.note`.
 */
import type { WeightDtype } from '../../manifests/index.ts';
import type { Act, AttentionParams, Backend, DeviceBytes, Weight } from '../backend.ts';
import { createCpuBackend, hostBytes, hostFloats, hostWeightBytes } from '../cpu/backend.ts';
import type { HostRegion } from '../cpu/memory.ts';
import { scaleByteOffset } from '../layout.ts';
import * as v from '../validate.ts';
import { WasmHeap } from './heap.ts';
import { f32Bits, KernelPool, type KernelExports, type SpawnWorker } from './pool.ts';
import { defaultSpawn, defaultThreads, setUp } from './setup.ts';

const OP_MATMUL = 1;
const OP_ATTENTION = 2;
const OP_READ = 3;
const OP_QUANTIZE = 4;
/** Formats with a SIMD kernel; others (mxfp4, …) run the reference backend's row decode. */
const DTYPE_CODE: Partial<Record<WeightDtype, number>> = { f32: 0, f16: 1, q8_0: 2, q4_0: 3 };
/**
 * Multiply-adds each extra thread must get (~100 µs of work): waking a worker costs microseconds
 * on an idle machine and far more on a busy one, so a small model's matrices stay on one thread.
 */
const GRAIN = 1 << 20;

export interface WasmThreading {
  /** Threads each op may use (1: single-threaded). */
  threads: number;
  /** Whether the memory is a SharedArrayBuffer. */
  shared: boolean;
  /** Why fewer threads than asked for run, or null. */
  note: string | null;
}

export interface WasmBackend extends Backend {
  readonly threading: WasmThreading;
  /**
   * Reads every byte of `b` (whole 64-byte chunks) on `threads` threads and returns their i32 sum:
   * the memory read-bandwidth probe GEMV throughput is compared with (bench/cpu-gemv.ts).
   */
  readAll(b: DeviceBytes, threads: number): number;
  /** Ends the worker threads. */
  destroy(): void;
}

export interface WasmBackendOptions {
  /** Threads per op, the caller's included (default: the machine's cores). */
  threads?: number;
  /** How to start a worker (default: Web Workers where `Worker` exists; Node passes worker_threads). */
  spawn?: SpawnWorker;
}

/**
 * @example
 * const be = await createWasmBackend();            // browser: Web Workers if cross-origin isolated
 * if (be.threading.note) console.warn(be.threading.note);
 * // Node: createWasmBackendNode() from kernels/node.ts brings worker_threads
 */
export async function createWasmBackend(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
  const setup = await setUp(Math.max(1, Math.floor(opts.threads ?? defaultThreads())), opts.spawn ?? defaultSpawn());
  const instance = await WebAssembly.instantiate(setup.wasm, { env: { memory: setup.memory } });
  const pool = new KernelPool(instance.instance.exports as unknown as KernelExports, setup.memory, setup.workers);
  const heap = new WasmHeap(setup.memory);
  const ref = createCpuBackend(heap);
  const scratch: Record<'threads' | 'quant', HostRegion | null> = { threads: null, quant: null };

  /** The start of a scratch region of at least `bytes` (grown, never shrunk). */
  function scratchFor(kind: 'threads' | 'quant', bytes: number): number {
    const cur = scratch[kind];
    if (!cur || cur.byteLength < bytes) {
      if (cur) heap.free(cur);
      scratch[kind] = heap.alloc(bytes);
    }
    return scratch[kind]!.bytes().byteOffset;
  }

  /** Per-thread scratch of at least `bytes` each, as [base address, stride]. */
  function threadScratch(bytes: number): [number, number] {
    const stride = Math.ceil(bytes / 64) * 64;
    return [scratchFor('threads', stride * pool.threads), stride];
  }

  /**
   * Rows of x[:, col..col+k) in 16-bit fixed point for the q8_0/q4_0 kernels, as [values, block
   * scales, zero-point terms (q4_0; else 0)].
   */
  function quantizeX(x: Act, col: number, k: number, dtype: 'q8_0' | 'q4_0'): [number, number, number] {
    const valueBytes = x.rows * k * 2;
    const blockBytes = x.rows * (k / 32) * 4;
    const base = scratchFor('quant', valueBytes + 2 * blockBytes);
    const xc = dtype === 'q4_0' ? base + valueBytes + blockBytes : 0;
    pool.setArgs([OP_QUANTIZE, hostFloats(x).byteOffset + col * 4, x.cols * 4, k, base, base + valueBytes, xc]);
    pool.run(0, x.rows, Math.ceil((x.rows * k * 16) / GRAIN));
    return [base, base + valueBytes, xc];
  }

  /** out[:, row0..row0+rows) (+)= x[:, xCol..xCol+K) · w[row0..row0+rows, :]ᵀ. */
  function matmulRows(x: Act, xCol: number, w: Weight, row0: number, rows: number, out: Act, accumulate: boolean): void {
    const k = w.cols;
    const quant = w.dtype === 'q8_0' || w.dtype === 'q4_0' ? w.dtype : null;
    const [scratchBase, scratchStride] = x.rows > 1 && w.dtype === 'f16' ? threadScratch(k * 4) : [0, 0];
    const [xq, xs, xc] = quant ? quantizeX(x, xCol, k, quant) : [0, 0, 0];
    const wPtr = hostWeightBytes(w).byteOffset + w.byteOffset;
    const sPtr = quant ? wPtr + scaleByteOffset(quant, w.rows, w.cols) : 0;
    pool.setArgs([
      OP_MATMUL, DTYPE_CODE[w.dtype]!, hostFloats(x).byteOffset + xCol * 4, x.cols * 4, x.rows, k,
      wPtr, sPtr, hostFloats(out).byteOffset, out.cols * 4, accumulate ? 1 : 0, scratchBase, scratchStride, xq, xs, xc,
    ]);
    pool.run(row0, row0 + rows, Math.ceil((rows * k * x.rows) / GRAIN));
  }

  function attention(q: Act, k: Act, vc: Act, out: Act, p: AttentionParams): void {
    const t = p.startPos + q.rows;
    const group = p.heads / p.kvHeads;
    const threads = Math.min(pool.threads, Math.ceil((q.rows * p.heads * t * (p.dk + p.dv)) / GRAIN));
    // heads of one kv group per work item: all of them (each k/v row read once) unless that leaves threads idle
    const sub = Math.max(1, Math.min(group, Math.floor((group * q.rows * p.kvHeads) / threads)));
    const [scratchBase, scratchStride] = threadScratch(sub * (t + 1) * 4);
    pool.setArgs([
      OP_ATTENTION, hostFloats(q).byteOffset, q.cols * 4, hostFloats(k).byteOffset, k.cols * 4,
      hostFloats(vc).byteOffset + (p.vColOffset ?? 0) * 4, vc.cols * 4, hostFloats(out).byteOffset, out.cols * 4,
      p.heads, group, p.dk, p.dv, p.startPos, f32Bits(p.scale), scratchBase, scratchStride, sub,
    ]);
    pool.run(0, q.rows * p.kvHeads * Math.ceil(group / sub), threads);
  }

  return {
    ...ref,
    name: 'wasm',
    threading: { threads: pool.threads, shared: setup.workers.length > 0, note: setup.note },
    matmul(x, w, out, accumulate = false) {
      if (DTYPE_CODE[w.dtype] === undefined) return ref.matmul(x, w, out, accumulate);
      v.checkMatmul(x, w, out);
      matmulRows(x, 0, w, 0, w.rows, out, accumulate);
    },
    matmulHeads(x, w, out, heads) {
      if (DTYPE_CODE[w.dtype] === undefined) return ref.matmulHeads(x, w, out, heads);
      v.checkMatmulHeads(x, w, out, heads);
      const n = w.rows / heads;
      for (let h = 0; h < heads; h++) matmulRows(x, h * w.cols, w, h * n, n, out, false);
    },
    attention(q, k, vc, out, p) {
      // the SIMD kernel is plain causal attention: windows, ring-buffer caches and sinks take the reference path
      if (p.window !== undefined || p.cacheRows !== undefined || p.sinks !== undefined) return ref.attention(q, k, vc, out, p);
      v.checkAttention(q, k, vc, out, p);
      attention(q, k, vc, out, p);
    },
    readAll(b, threads) {
      const base = hostBytes(b).byteOffset;
      const sums = heap.alloc(4 * pool.threads);
      try {
        pool.setArgs([OP_READ, base, sums.bytes().byteOffset]);
        pool.run(0, Math.floor(b.byteLength / 64), threads);
        return new Int32Array(sums.bytes().buffer, sums.bytes().byteOffset, pool.threads).reduce((a, x) => (a + x) | 0, 0);
      } finally {
        heap.free(sums);
      }
    },
    destroy() {
      pool.destroy();
    },
  };
}
