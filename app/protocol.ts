/** Messages between the page (main thread) and the engine worker. */
import type { FinishReason, GenerationStats } from '../engine/index.ts';
import type { StoreStats } from '../storage/index.ts';

export type BackendChoice = 'auto' | 'webgpu' | 'cpu';

export interface Sampling {
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
}

export type ToWorker =
  /** Sent first, so the backend is set up while the page reads the manifest. */
  | { t: 'backend'; choice: BackendChoice }
  | { t: 'load'; modelId: string; manifest: Uint8Array; ramBytes: number }
  | { t: 'shard'; req: number; bytes?: Uint8Array; error?: string }
  /** The user's next message: a chat turn with a template, else appended to the text being continued. */
  | { t: 'send'; text: string; sampling: Sampling }
  | { t: 'stop' }
  | { t: 'reset' };

/** Loading phases the page shows, in order. */
export type Phase = 'weights' | 'tokenizer' | 'pipeline';

export interface TurnResult {
  ids: number[];
  text: string;
  promptTokens: number;
  finishReason: FinishReason;
  stats: GenerationStats;
}

export type FromWorker =
  | { t: 'need'; req: number; hash: string }
  | { t: 'phase'; phase: Phase }
  | { t: 'backend'; name: 'webgpu' | 'cpu'; adapter: string; note: string | null }
  | { t: 'ready'; loadMs: number; numLayers: number; numExperts: number; hasChatTemplate: boolean }
  /** One generated token: the experts each MoE layer used for it, and the store's tiers now. */
  | { t: 'token'; id: number; text: string; experts: number[][]; storage: StoreStats }
  | { t: 'done'; result: TurnResult; storage: StoreStats }
  | { t: 'error'; message: string };
