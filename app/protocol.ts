/** Messages between the page (main thread) and the engine worker. */
import type { GenerationStats } from '../engine/index.ts';

export type BackendChoice = 'auto' | 'webgpu' | 'cpu';

export interface Sampling {
  maxNewTokens: number;
  temperature: number;
  topP: number;
  seed: number;
}

export type ToWorker =
  | { t: 'load'; modelId: string; manifest: Uint8Array; backend: BackendChoice; vramBytes: number; ramBytes: number }
  | { t: 'shard'; req: number; bytes?: Uint8Array; error?: string }
  | { t: 'generate'; prompt: string; sampling: Sampling }
  | { t: 'stop' };

/** Loading phases the page shows, in order. */
export type Phase = 'weights' | 'tokenizer' | 'pipeline';

export type FromWorker =
  | { t: 'need'; req: number; hash: string }
  | { t: 'phase'; phase: Phase }
  | { t: 'backend'; name: 'webgpu' | 'cpu'; adapter: string; note: string | null }
  | { t: 'ready'; loadMs: number; numLayers: number; numExperts: number; hasChatTemplate: boolean; eos: number[] }
  | { t: 'prompt'; ids: number[] }
  | { t: 'token'; id: number; text: string; experts: number[][]; stats: GenerationStats }
  | { t: 'done'; stopped: boolean; stats: GenerationStats }
  | { t: 'error'; message: string };
