/**
 * The page's handle on the engine worker. The page talks only to this interface, so moving to the
 * engine's chat session (templates, KV reuse across turns) changes this file and the worker only.
 */
import type { GenerationStats } from '../engine/index.ts';
import type { BackendChoice, FromWorker, Phase, Sampling, ToWorker } from './protocol.ts';

export interface EngineEvents {
  phase(p: Phase): void;
  backend(name: 'webgpu' | 'cpu', adapter: string, note: string | null): void;
  token(id: number, text: string, experts: number[][], stats: GenerationStats): void;
  error(message: string): void;
}

export interface Ready {
  loadMs: number;
  numLayers: number;
  numExperts: number;
  hasChatTemplate: boolean;
}

export interface Reply {
  promptIds: number[];
  ids: number[];
  text: string;
  stopped: boolean;
  stats: GenerationStats;
}

export interface ChatEngine {
  load(modelId: string, manifest: Uint8Array, backend: BackendChoice): Promise<Ready>;
  /** Continues `prompt`; tokens arrive through the events as they are chosen. */
  send(prompt: string, sampling: Sampling): Promise<Reply>;
  /** Ends the running reply after the token in flight. */
  stop(): void;
}

export function workerEngine(getShard: (hash: string) => Promise<Uint8Array>, on: EngineEvents): ChatEngine {
  const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
  const send = (m: ToWorker, transfer: Transferable[] = []) => worker.postMessage(m, transfer);
  let onReady: ((r: Ready) => void) | undefined;
  let reply: { resolve: (r: Reply) => void; reject: (e: Error) => void; r: Omit<Reply, 'stopped' | 'stats'> } | undefined;
  let failLoad: ((e: Error) => void) | undefined;

  worker.onmessage = (e: MessageEvent<FromWorker>) => {
    const m = e.data;
    switch (m.t) {
      case 'need':
        getShard(m.hash).then(
          (bytes) => send({ t: 'shard', req: m.req, bytes }),
          (err: Error) => send({ t: 'shard', req: m.req, error: err.message }),
        );
        break;
      case 'phase': on.phase(m.phase); break;
      case 'backend': on.backend(m.name, m.adapter, m.note); break;
      case 'ready': onReady?.(m); break;
      case 'prompt': if (reply) reply.r.promptIds = m.ids; break;
      case 'token':
        if (reply) {
          reply.r.ids.push(m.id);
          reply.r.text += m.text;
        }
        on.token(m.id, m.text, m.experts, m.stats);
        break;
      case 'done': reply?.resolve({ ...reply.r, stopped: m.stopped, stats: m.stats }); reply = undefined; break;
      case 'error': {
        const err = new Error(m.message);
        if (reply) reply.reject(err);
        else if (failLoad) failLoad(err);
        reply = undefined;
        on.error(m.message);
      }
    }
  };
  worker.onerror = (e) => on.error(`engine worker: ${e.message}`);

  return {
    load(modelId, manifest, backend) {
      return new Promise((resolve, reject) => {
        onReady = resolve;
        failLoad = reject;
        send({ t: 'load', modelId, manifest, backend, vramBytes: 0, ramBytes: 256 << 20 });
      });
    },
    send(prompt, sampling) {
      if (reply) return Promise.reject(new Error('a reply is already running'));
      return new Promise((resolve, reject) => {
        reply = { resolve, reject, r: { promptIds: [], ids: [], text: '' } };
        send({ t: 'generate', prompt, sampling });
      });
    },
    stop() {
      send({ t: 'stop' });
    },
  };
}
