/**
 * Runs one kernel op over a range of output rows, split between the calling thread and worker
 * threads that share its WebAssembly memory. The op's arguments sit in an argument block in that
 * memory (byte 64 on, read by the kernels themselves); control words at its start say which
 * generation of work is posted, over what range, to how many threads, and how many are still
 * busy. Workers spin briefly, then sleep on `Atomics.wait`, so back-to-back decode ops skip the
 * futex round trip.
 */
import { KernelError } from '../layout.ts';

const GEN = 0;
const PENDING = 1;
const BEGIN = 2;
const END = 3;
const THREADS = 4;
const FAILED = 5;
const PROBE = 6;
/** i32 index of byte 64, where the kernels read their arguments. */
const ARGS = 16;
const MAX_ARGS = 48;

export interface KernelExports {
  run(lo: number, hi: number, thread: number): void;
}

/** What a worker needs to join: the kernels' bytes (compiled there), the shared memory, its thread index (≥ 1). */
export interface WorkerInit {
  wasm: Uint8Array<ArrayBuffer>;
  memory: WebAssembly.Memory;
  index: number;
}

export interface WorkerHandle {
  terminate(): void;
}

/**
 * Starts a worker that calls `workerMain(init, ready)` (its source is `workerMain.toString()`),
 * resolving once it called `ready`: worker_threads in Node (kernels/wasm/node-workers.ts), Web
 * Workers in a browser (kernels/wasm/web-workers.ts).
 */
export type SpawnWorker = (init: WorkerInit) => Promise<WorkerHandle>;

/**
 * A worker's whole life. Self-contained (it runs from its source text in the worker): the control
 * word indices above appear as literals.
 */
export function workerMain(init: WorkerInit, ready: () => void): void {
  const instance = new WebAssembly.Instance(new WebAssembly.Module(init.wasm), { env: { memory: init.memory } });
  const run = instance.exports['run'] as (lo: number, hi: number, thread: number) => void;
  const ctl = new Int32Array(init.memory.buffer, 0, 16);
  let gen = Atomics.load(ctl, 0);
  ready();
  for (;;) {
    for (let spin = 0; Atomics.load(ctl, 0) === gen; spin++) if (spin > 20000) Atomics.wait(ctl, 0, gen);
    gen = Atomics.load(ctl, 0);
    const threads = Atomics.load(ctl, 4);
    if (threads === 0) return;
    if (init.index >= threads) continue;
    const begin = ctl[2]!;
    const span = ctl[3]! - begin;
    try {
      run(begin + Math.floor((span * init.index) / threads), begin + Math.floor((span * (init.index + 1)) / threads), init.index);
    } catch {
      Atomics.store(ctl, 5, 1);
    }
    if (Atomics.sub(ctl, 1, 1) === 1) Atomics.notify(ctl, 1);
  }
}

export class KernelPool {
  private readonly kernels: KernelExports;
  private readonly memory: WebAssembly.Memory;
  private readonly workers: WorkerHandle[];
  /** Whether this thread may block in Atomics.wait (not a browser's main thread). */
  private readonly canBlock: boolean;

  constructor(kernels: KernelExports, memory: WebAssembly.Memory, workers: WorkerHandle[]) {
    this.kernels = kernels;
    this.memory = memory;
    this.workers = workers;
    this.canBlock = workers.length > 0 && probeBlocking(this.ctl());
  }

  /** Threads an op may use: this one and the workers. */
  get threads(): number {
    return this.workers.length + 1;
  }

  /** Writes an op's arguments (i32 values; use `f32Bits` for floats). */
  setArgs(args: number[]): void {
    if (args.length > MAX_ARGS) throw new KernelError(`kernel op has ${args.length} arguments; the block holds ${MAX_ARGS}`);
    new Int32Array(this.memory.buffer, ARGS * 4, args.length).set(args);
  }

  /** Runs the op in the argument block over [begin, end), split between `threads` threads. */
  run(begin: number, end: number, threads: number): void {
    const t = Math.max(1, Math.min(threads, this.threads, end - begin));
    if (t === 1) {
      this.kernels.run(begin, end, 0);
      return;
    }
    const ctl = this.ctl();
    ctl[BEGIN] = begin;
    ctl[END] = end;
    ctl[THREADS] = t;
    ctl[FAILED] = 0;
    Atomics.store(ctl, PENDING, t - 1);
    Atomics.add(ctl, GEN, 1);
    Atomics.notify(ctl, GEN);
    this.kernels.run(begin, begin + Math.floor((end - begin) / t), 0);
    for (let spin = 0, p = Atomics.load(ctl, PENDING); p !== 0; p = Atomics.load(ctl, PENDING), spin++) {
      if (this.canBlock && spin > 20000) Atomics.wait(ctl, PENDING, p);
    }
    if (ctl[FAILED]) throw new KernelError('a WebAssembly kernel trapped in a worker thread');
  }

  /** Stops and ends the workers. */
  destroy(): void {
    if (this.workers.length === 0) return;
    const ctl = this.ctl();
    Atomics.store(ctl, THREADS, 0);
    Atomics.add(ctl, GEN, 1);
    Atomics.notify(ctl, GEN);
    for (const w of this.workers.splice(0)) w.terminate();
  }

  private ctl(): Int32Array {
    return new Int32Array(this.memory.buffer, 0, 16);
  }
}

/** A float argument as the i32 with its bits. */
export function f32Bits(x: number): number {
  return new Int32Array(Float32Array.of(x).buffer)[0]!;
}

/** Atomics.wait throws on a browser's main thread; elsewhere a zero timeout returns at once. */
function probeBlocking(ctl: Int32Array): boolean {
  try {
    Atomics.wait(ctl, PROBE, 1, 0);
    return true;
  } catch {
    return false;
  }
}
