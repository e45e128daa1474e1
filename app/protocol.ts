/** Messages between the page (main thread) and the engine worker. */
import type { FinishReason, GenerationStats } from '../engine/index.ts';
import type { BackendTrial } from '../kernels/index.ts';
import type { StoreStats } from '../storage/index.ts';

/** `?backend=` in the page's URL: auto (measured), or one backend as asked. */
export type BackendChoice = 'auto' | 'webgpu' | 'wasm' | 'cpu';

export type EngineName = 'webgpu' | 'wasm' | 'cpu';

/** Which engine runs the model and why, as the page shows it. */
export interface EngineReport {
  name: EngineName;
  /** e.g. "WebGPU (nvidia …)", "CPU (WebAssembly SIMD, 4 threads)", "CPU (TypeScript)". */
  engine: string;
  /** Threads of a CPU path (1 for the TypeScript backend), null on WebGPU. */
  threads: number | null;
  /** Why this engine instead of WebGPU (a software adapter or none, the CPU path chosen), or null. */
  note: string | null;
  /** For a CPU path: the reason WebGPU was not used, which the page remembers for the next visit. */
  cpuBecause: string | null;
  /** What pickBackend measured (empty when the choice was not measured). */
  trials: BackendTrial[];
}

export interface Sampling {
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
}

export type ToWorker =
  /** Sent first, so the backend is set up while the page reads the manifest. */
  /** `because`: a verdict the page remembered, shown as the reason for the CPU path asked for. */
  | { t: 'backend'; choice: BackendChoice; because: string | null }
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
  | { t: 'backend'; report: EngineReport }
  | { t: 'ready'; loadMs: number; numLayers: number; numExperts: number; hasChatTemplate: boolean }
  /** One generated token: the experts each MoE layer used for it, and the store's tiers now. */
  | { t: 'token'; id: number; text: string; experts: number[][]; storage: StoreStats }
  | { t: 'done'; result: TurnResult; storage: StoreStats }
  | { t: 'error'; message: string };
