/** Web Workers for the WASM backend's pool, started from a Blob of `workerMain`'s source (no worker file to serve). */
import { KernelError } from '../layout.ts';
import { workerMain, type SpawnWorker } from './pool.ts';

export const spawnWebWorker: SpawnWorker = (init) =>
  new Promise((resolve, reject) => {
    const src = `onmessage = (e) => (${workerMain.toString()})(e.data, () => postMessage('ready'));`;
    const url = URL.createObjectURL(new Blob([src], { type: 'text/javascript' }));
    const worker = new Worker(url);
    worker.onmessage = () => {
      URL.revokeObjectURL(url);
      resolve(worker);
    };
    worker.onerror = (e) => {
      URL.revokeObjectURL(url);
      worker.terminate();
      reject(new KernelError(`WASM worker ${init.index} failed to start: ${e.message}`));
    };
    worker.postMessage(init);
  });
