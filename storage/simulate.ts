/**
 * Replays an expert-access trace against a cache of equal-sized experts: the same policy objects
 * and traffic model the store's tiers use, without bytes. Used by bench/eviction.ts and tests.
 */
import { TrafficModel, createPolicy, type PolicyName } from './policy.ts';
import { StorageError } from './errors.ts';

/** One layer of one forward pass: the experts it used (a token in decode, the union in prefill). */
export interface TraceStep {
  layer: number;
  experts: number[];
}

export interface SimulationResult {
  policy: PolicyName | 'belady';
  capacity: number;
  accesses: number;
  hits: number;
  hitRate: number;
}

/** Check and normalise a parsed JSON trace, naming the first bad entry. */
export function parseTrace(data: unknown, source: string): TraceStep[] {
  if (!Array.isArray(data)) throw new StorageError(`${source}: a trace is a JSON array of {layer, experts[]}`);
  return data.map((s: unknown, i) => {
    const step = s as { layer?: unknown; experts?: unknown };
    if (!Number.isInteger(step?.layer) || (step.layer as number) < 0 || !Array.isArray(step.experts) || !step.experts.every((e) => Number.isInteger(e) && e >= 0)) {
      throw new StorageError(`${source}: entry ${i} is not {layer: non-negative integer, experts: non-negative integers[]}`);
    }
    return { layer: step.layer as number, experts: [...new Set(step.experts as number[])] };
  });
}

const key = (layer: number, expert: number): string => `${layer}/${expert}`;

/**
 * Hit rate of a cache holding `capacity` experts. The step's own experts are protected while it
 * runs (the store's working set), as the engine needs them resident together.
 */
export function simulateEviction(trace: TraceStep[], policyName: PolicyName | 'belady', capacity: number): SimulationResult {
  if (!Number.isInteger(capacity) || capacity <= 0) throw new StorageError(`capacity must be a positive integer, got ${capacity}`);
  const widest = Math.max(0, ...trace.map((s) => s.experts.length));
  if (capacity < widest) throw new StorageError(`capacity ${capacity} cannot hold one step's working set of ${widest} experts`);
  const layers = new Map<string, number>();
  for (const s of trace) for (const e of s.experts) layers.set(key(s.layer, e), s.layer);
  const traffic = new TrafficModel((k) => ({ layer: layers.get(k)! }));
  const policy = policyName === 'belady' ? null : createPolicy(policyName, traffic);
  const next = policyName === 'belady' ? nextUses(trace) : null;
  const cache = new Set<string>();
  let accesses = 0;
  let hits = 0;
  for (const step of trace) {
    const working = new Set(step.experts.map((e) => key(step.layer, e)));
    for (const e of step.experts) {
      const k = key(step.layer, e);
      accesses++;
      if (cache.has(k)) {
        hits++;
      } else {
        if (cache.size >= capacity) {
          const victim = policy
            ? policy.victim(cache, (c) => !working.has(c))
            : farthest(cache, working, next!);
          cache.delete(victim!);
        }
        cache.add(k);
      }
      traffic.access(k);
      if (next) next.cursor.set(k, (next.cursor.get(k) ?? 0) + 1);
    }
  }
  return { policy: policyName, capacity, accesses, hits, hitRate: accesses === 0 ? 0 : hits / accesses };
}

interface NextUses {
  times: Map<string, number[]>;
  cursor: Map<string, number>;
}

function nextUses(trace: TraceStep[]): NextUses {
  const times = new Map<string, number[]>();
  let t = 0;
  for (const s of trace) {
    for (const e of s.experts) {
      const k = key(s.layer, e);
      let list = times.get(k);
      if (!list) times.set(k, (list = []));
      list.push(t++);
    }
  }
  return { times, cursor: new Map() };
}

/** Belady's optimum: evict the entry whose next use is farthest in the future. */
function farthest(cache: Set<string>, working: Set<string>, n: NextUses): string {
  let best = '';
  let bestT = -1;
  for (const k of cache) {
    if (working.has(k)) continue;
    const list = n.times.get(k)!;
    const at = list[n.cursor.get(k) ?? 0];
    const nt = at === undefined ? Infinity : at;
    if (nt > bestT) {
      bestT = nt;
      best = k;
      if (nt === Infinity) break;
    }
  }
  return best;
}
