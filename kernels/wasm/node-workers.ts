/** worker_threads for the WASM backend's pool, evaluated from `workerMain`'s source (no worker file to locate or bundle). */
import { Worker } from 'node:worker_threads';
import { KernelError } from '../layout.ts';
import { workerMain, type SpawnWorker } from './pool.ts';

export const spawnNodeWorker: SpawnWorker = (init) =>
  new Promise((resolve, reject) => {
    const src = `const { workerData, parentPort } = require('node:worker_threads');
(${workerMain.toString()})(workerData, () => parentPort.postMessage('ready'));`;
    const worker = new Worker(src, { eval: true, workerData: init });
    worker.once('message', () => {
      // a worker parked in Atomics.wait must not keep the process alive
      worker.unref();
      resolve({ terminate: () => void worker.terminate() });
    });
    worker.once('error', (e) => reject(new KernelError(`WASM worker ${init.index} failed to start: ${e.message}`, { cause: e })));
  });
