/**
 * The page's handle on the engine worker. The page talks only to this interface; the worker holds
 * the engine and its chat session.
 */
import type { StoreStats } from '../storage/index.ts';
import type { BackendChoice, EngineReport, FromWorker, Phase, Sampling, ToWorker, TurnResult } from './protocol.ts';

export interface EngineEvents {
  phase(p: Phase): void;
  backend(report: EngineReport): void;
  token(text: string, experts: number[][], storage: StoreStats): void;
  /** A turn ended (its tiers as they are now). */
  storage(s: StoreStats): void;
  error(message: string): void;
}

export interface Ready {
  loadMs: number;
  numLayers: number;
  numExperts: number;
  hasChatTemplate: boolean;
}

export interface ChatEngine {
  /**
   * Starts setting up the backend (call as early as possible: probing WebGPU takes a while);
   * `because` is a remembered verdict, the reason shown for the CPU path asked for.
   */
  prepare(backend: BackendChoice, because: string | null): void;
  load(modelId: string, manifest: Uint8Array): Promise<Ready>;
  /** The next user message; tokens arrive through the events as they are chosen. */
  send(text: string, sampling: Sampling): Promise<TurnResult>;
  /** Ends the running reply at once. */
  stop(): void;
  /** Forgets the conversation (and the KV cache behind it). */
  reset(): void;
}

export function workerEngine(getShard: (hash: string) => Promise<Uint8Array>, on: EngineEvents): ChatEngine {
  const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
  const send = (m: ToWorker) => worker.postMessage(m);
  let loading: { resolve: (r: Ready) => void; reject: (e: Error) => void } | undefined;
  let turn: { resolve: (r: TurnResult) => void; reject: (e: Error) => void } | undefined;

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
      case 'backend': on.backend(m.report); break;
      case 'ready': loading?.resolve(m); loading = undefined; break;
      case 'token': on.token(m.text, m.experts, m.storage); break;
      case 'done':
        on.storage(m.storage);
        turn?.resolve(m.result);
        turn = undefined;
        break;
      case 'error': {
        const err = new Error(m.message);
        (turn ?? loading)?.reject(err);
        if (!turn && !loading) on.error(m.message);
        turn = loading = undefined;
      }
    }
  };
  worker.onerror = (e) => on.error(`engine worker: ${e.message}`);

  return {
    prepare: (choice, because) => send({ t: 'backend', choice, because }),
    load(modelId, manifest) {
      return new Promise((resolve, reject) => {
        loading = { resolve, reject };
        send({ t: 'load', modelId, manifest, ramBytes: 256 << 20 });
      });
    },
    send(text, sampling) {
      if (turn) return Promise.reject(new Error('a reply is already running'));
      return new Promise((resolve, reject) => {
        turn = { resolve, reject };
        send({ t: 'send', text, sampling });
      });
    },
    stop: () => send({ t: 'stop' }),
    reset: () => send({ t: 'reset' }),
  };
}
