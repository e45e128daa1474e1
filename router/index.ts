export {
  RouterError,
  route,
  routeSoftmaxTopk,
  routeSigmoidGroupLimited,
  topkInto,
  type Routing,
  type SoftmaxTopkConfig,
  type GroupLimitedConfig,
} from './routing.ts';
export { dispatchByExpert, expertsUsed, groupsUsed, expertsOfGroup, type ExpertDispatch } from './dispatch.ts';
