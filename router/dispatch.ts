/**
 * The engine runs each selected expert once over all the tokens that chose it, so a Routing
 * (token → experts) is inverted into a compressed per-expert list (expert → rows, scales).
 */
import type { Routing } from './routing.ts';

/**
 * CSR view of a Routing: expert `experts[i]` processes rows `rows[offsets[i]..offsets[i+1])`,
 * scaling its output for each by the matching `scales` entry. Experts ascend (transformers'
 * expert loop order); rows ascend within an expert.
 */
export interface ExpertDispatch {
  readonly experts: Int32Array;
  readonly offsets: Int32Array;
  readonly rows: Int32Array;
  readonly scales: Float32Array;
}

export function dispatchByExpert(r: Routing): ExpertDispatch {
  const counts = new Int32Array(r.numExperts);
  for (let i = 0; i < r.experts.length; i++) counts[r.experts[i]!]!++;
  let used = 0;
  for (let e = 0; e < r.numExperts; e++) if (counts[e]! > 0) used++;
  const experts = new Int32Array(used);
  const offsets = new Int32Array(used + 1);
  const cursor = new Int32Array(r.numExperts);
  let n = 0;
  for (let e = 0; e < r.numExperts; e++) {
    if (counts[e] === 0) continue;
    experts[n] = e;
    cursor[e] = offsets[n]!;
    offsets[n + 1] = offsets[n]! + counts[e]!;
    n++;
  }
  const rows = new Int32Array(r.experts.length);
  const scales = new Float32Array(r.experts.length);
  for (let t = 0; t < r.tokens; t++) {
    for (let j = 0; j < r.k; j++) {
      const e = r.experts[t * r.k + j]!;
      const at = cursor[e]!++;
      rows[at] = t;
      // a token lists an expert at most once, so rows stay ascending and unique per expert
      scales[at] = r.weights[t * r.k + j]!;
    }
  }
  return { experts, offsets, rows, scales };
}

/** The distinct experts a Routing uses, ascending: what the store must have resident for the layer. */
export function expertsUsed(r: Routing): Int32Array {
  const seen = new Uint8Array(r.numExperts);
  for (let i = 0; i < r.experts.length; i++) seen[r.experts[i]!] = 1;
  const out: number[] = [];
  for (let e = 0; e < r.numExperts; e++) if (seen[e]) out.push(e);
  return Int32Array.from(out);
}

/** The distinct groups kept for any token, ascending (group-limited routing; empty otherwise). */
export function groupsUsed(r: Routing): Int32Array {
  if (r.groups === null) return new Int32Array(0);
  const seen = new Set<number>(r.groups);
  return Int32Array.from([...seen].sort((a, b) => a - b));
}

/** Expert ids of a group, for fetching or prefetching whole groups. */
export function expertsOfGroup(group: number, groupSize: number): Int32Array {
  const out = new Int32Array(groupSize);
  for (let i = 0; i < groupSize; i++) out[i] = group * groupSize + i;
  return out;
}
