/**
 * Deterministic backend counters (dispatches, read-backs, bytes uploaded, submissions) of the
 * ratcheted runs (tests/integration/counter-cases.ts), printed as JSON; with --write, they become
 * the baseline tests/integration/counters.test.ts compares against. Commit a new baseline only with
 * a message that says why the counts changed.
 *
 *   node bench/counters.ts [--write] [--backend cpu|webgpu]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { BACKENDS, BASELINE_PATH, CASES, measureCounters, type CounterBaseline } from '../tests/integration/counter-cases.ts';

const { values } = parseArgs({ options: { write: { type: 'boolean', default: false }, backend: { type: 'string' } } });
const backends = values.backend ? [values.backend] : Object.keys(BACKENDS);
let baseline: CounterBaseline = {};
try {
  baseline = JSON.parse(readFileSync(BASELINE_PATH, 'utf8')) as CounterBaseline;
} catch {
  // no baseline yet: this run writes the first
}
for (const name of Object.keys(CASES)) {
  for (const b of backends) {
    (baseline[name] ??= {})[b] = await measureCounters(name, b);
  }
}
const json = JSON.stringify(baseline, null, 2);
if (values.write) writeFileSync(BASELINE_PATH, json + '\n');
process.stdout.write(json + '\n');
process.exit(0);
