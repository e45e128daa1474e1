export {
  RouterError,
  route,
  routeSoftmaxTopk,
  routeSigmoidGroupLimited,
  routeTopkSoftmax,
  type TopkSoftmaxConfig,
  topkInto,
  type Routing,
  type SoftmaxTopkConfig,
  type GroupLimitedConfig,
} from './routing.ts';
export { dispatchByExpert, expertsUsed, groupsUsed, expertsOfGroup, type ExpertDispatch } from './dispatch.ts';
export {
  Prefetcher,
  type PrefetcherOptions,
  type PrefetcherStats,
  type PrefetchTarget,
  type LayerGate,
  type AccuracyStats,
} from './prefetch.ts';
