export { Engine, type EngineOptions, type GenerateOptions, type GeneratedToken, type Generation, type GenerationStats } from './engine.ts';
export { EngineError, ModelLoadError, NonFiniteError } from './errors.ts';
export type { LayerObserver } from './forward.ts';
export { KvCache } from './kv-cache.ts';
export type { ModelSource } from './source.ts';
export { backendUploader } from './stored-experts.ts';
