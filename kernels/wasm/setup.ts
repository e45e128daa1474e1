/**
 * What the WASM backend starts on: a shared memory and worker threads when the environment allows
 * them, else an unshared memory, one thread and the reason.
 */
import { KernelError } from '../layout.ts';
import { SINGLE_WASM_BASE64, THREADS_WASM_BASE64 } from './modules.generated.ts';
import type { SpawnWorker, WorkerHandle } from './pool.ts';
import { spawnWebWorker } from './web-workers.ts';

/** 2 MiB to start; wasm32's 4 GiB at most (a shared memory must declare its maximum). */
const INITIAL_PAGES = 32;
const MAX_PAGES = 65536;

function decode(b64: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

export function defaultThreads(): number {
  const n = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency;
  return Math.max(1, n ?? 1);
}

export function defaultSpawn(): SpawnWorker | undefined {
  return typeof Worker === 'function' && typeof Blob === 'function' ? spawnWebWorker : undefined;
}

export interface Setup {
  memory: WebAssembly.Memory;
  wasm: Uint8Array<ArrayBuffer>;
  workers: WorkerHandle[];
  note: string | null;
}

/** Shared memory and workers when they can be had, else an unshared memory and the reason. */
export async function setUp(threads: number, spawn: SpawnWorker | undefined): Promise<Setup> {
  const single = (note: string | null): Setup => ({
    memory: new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: MAX_PAGES }),
    wasm: decode(SINGLE_WASM_BASE64),
    workers: [],
    note,
  });
  if (!WebAssembly.validate(decode(SINGLE_WASM_BASE64))) {
    throw new KernelError('this JavaScript engine lacks WebAssembly SIMD128, which the wasm backend needs');
  }
  if (threads <= 1) return single(null);
  if (typeof SharedArrayBuffer !== 'function' || (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === false) {
    return single('SharedArrayBuffer is unavailable (the page is not cross-origin isolated): WASM runs single-threaded');
  }
  if (!spawn) return single('no worker threads can be started here: WASM runs single-threaded');
  const memory = new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: MAX_PAGES, shared: true });
  const wasm = decode(THREADS_WASM_BASE64);
  const started = await Promise.allSettled(Array.from({ length: threads - 1 }, (_, i) => spawn({ wasm, memory, index: i + 1 })));
  const workers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  if (workers.length < threads - 1) {
    for (const w of workers) w.terminate();
    const why = started.find((s) => s.status === 'rejected') as PromiseRejectedResult;
    return single(`worker threads failed to start (${String(why.reason)}): WASM runs single-threaded`);
  }
  return { memory, wasm, workers, note: null };
}
