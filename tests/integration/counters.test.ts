/**
 * The counter ratchet: per backend, the prefill's and each decode step's dispatches, read-backs,
 * bytes uploaded and submissions must not exceed bench/baselines/counters.json. They are
 * deterministic, so any rise is a regression, not noise. When a change lowers them (or must raise
 * them), rewrite the baseline with `node bench/counters.ts --write` in a commit that says why.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { BackendCounters } from '../../kernels/index.ts';
import { BACKENDS, BASELINE_PATH, CASES, measureCounters, type CounterBaseline } from './counter-cases.ts';

const baseline = JSON.parse(readFileSync(BASELINE_PATH, 'utf8')) as CounterBaseline;
const FIELDS: (keyof BackendCounters)[] = ['dispatches', 'readBacks', 'uploadedBytes', 'submits'];

/** The fields above their baseline, as "phase.field: now > baseline". */
function regressions(phase: string, now: BackendCounters, base: BackendCounters): string[] {
  return FIELDS.filter((f) => now[f] > base[f]).map((f) => `${phase}.${f}: ${now[f]} > ${base[f]}`);
}

describe.each(Object.keys(BACKENDS))('%s backend', (backendName) => {
  it.each(Object.keys(CASES))('%s does no more work per token than the committed baseline', async (caseName) => {
    const base = baseline[caseName]?.[backendName];
    expect(base, `bench/baselines/counters.json has no entry for ${caseName} on ${backendName}`).toBeDefined();
    const now = await measureCounters(caseName, backendName);
    expect([...regressions('prefill', now.prefill, base!.prefill), ...regressions('perToken', now.perToken, base!.perToken)]).toEqual([]);
  });
});
