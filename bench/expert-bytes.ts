/**
 * Bytes of one routed expert (gate, up and down) and of the whole model per expert format, on the
 * real shapes of the synth presets, from the convert plan alone (no weights are generated): what
 * a token's expert uses cost on the link when they are paged in. Dense tensors stay at --quant.
 *
 *   node_modules/.bin/node bench/expert-bytes.ts [--preset mixtral-8x7b] [--quant q4_0] [--out FILE]
 *
 * Without --out the results go to stdout (a run never replaces a committed file unless asked).
 */
import { writeFileSync } from 'node:fs';
import { formatOf, manifestOfPlan, normaliseConfig, planModel, summarize, WEIGHT_DTYPES } from '../manifests/index.ts';
import { PRESETS } from '../manifests/node.ts';
import { benchArgs, invocation } from './invocation.ts';

const { values } = benchArgs({ preset: { type: 'string', default: 'mixtral-8x7b' }, quant: { type: 'string', default: 'q4_0' }, out: { type: 'string' } });
const preset = PRESETS[values.preset];
if (!preset) throw new Error(`unknown preset ${JSON.stringify(values.preset)} (known: ${Object.keys(PRESETS).join(', ')})`);
const quant = formatOf(values.quant).name;
const config = normaliseConfig(preset.config, `preset ${values.preset}`);
const rows = WEIGHT_DTYPES.filter((d) => d !== 'f32').map((expertQuant) => {
  const plan = planModel(config, quant, 64 * 1024 * 1024, expertQuant);
  const hashes = plan.shards.map((_, i) => (i + 1).toString(16).padStart(64, '0'));
  const manifest = manifestOfPlan(plan, values.preset, hashes, {});
  const { totals } = manifest;
  const perExpert = totals.expertBytes / plan.experts.length;
  const expertParams = summarize(manifest).parameters.experts / plan.experts.length;
  return { expertQuant, bytesPerExpert: perExpert, bitsPerExpertWeight: (perExpert * 8) / expertParams, expertBytes: totals.expertBytes, modelBytes: totals.bytes };
});
const out = { bench: 'expert-bytes', command: invocation('expert-bytes.ts'), date: new Date().toISOString(), preset: values.preset, quant, rows };
const json = JSON.stringify(out, null, 2) + '\n';
if (values.out) writeFileSync(values.out, json);
else process.stdout.write(json);
