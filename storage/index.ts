export { ShardStore, type ShardStoreOptions } from './store.ts';
export { HttpSource, type HttpSourceOptions } from './http.ts';
export { OpfsBackend, type OpfsDirectory, type OpfsFile } from './opfs.ts';
export {
  TrafficModel,
  LruPolicy,
  ReusePolicy,
  createPolicy,
  type EvictionPolicy,
  type PolicyName,
  type ShardMeta,
  type MetaOf,
} from './policy.ts';
export { StorageError, StorageBudgetError, ShardUnavailableError, ShardVerifyError, SourceError } from './errors.ts';
export type {
  ShardSource,
  DeviceUploader,
  PersistentBackend,
  TierName,
  TierStats,
  SourceStats,
  PrefetchStats,
  StoreStats,
} from './types.ts';
export { simulateEviction, parseTrace, type TraceStep, type SimulationResult } from './simulate.ts';
export { shardMeta } from './meta.ts';
