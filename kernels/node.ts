/** Node-only parts of kernels/: the WASM backend with worker_threads. */
import { availableParallelism } from 'node:os';
import { createWasmBackend, type WasmBackend, type WasmBackendOptions } from './wasm/backend.ts';
import { spawnNodeWorker } from './wasm/node-workers.ts';

/**
 * The WASM backend on worker_threads, one thread per core unless `threads` says otherwise.
 *
 * @example
 * const be = await createWasmBackendNode({ threads: 4 });
 * try { ... } finally { be.destroy(); }
 */
export function createWasmBackendNode(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
  return createWasmBackend({ threads: availableParallelism(), spawn: spawnNodeWorker, ...opts });
}
