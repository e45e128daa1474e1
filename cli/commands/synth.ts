import { intFlag, numFlag, numberOption, parseCommandArgs, UsageError, type Command } from '../command.ts';
import { PRESETS, progressBar, synth } from '../../manifests/node.ts';
import { WEIGHT_DTYPES, type Architecture } from '../../manifests/index.ts';
import { parseQuant } from './convert.ts';

const usage = `usage: doppler synth --arch mixtral|qwen3_moe|deepseek_v3|gpt_oss --preset NAME --quant Q --out DIR
                     [--expert-quant Q] [--manifest-only] [--seed N] [--layers N] [--shard-mib N] [--workers N]

Writes a random-weight RDRR model of a real model's shape (for benchmarks). Weights are generated
directly in the stored format: 64 KiB windows of a per-seed AES-CTR pool, drawn per tensor name.

presets: ${Object.entries(PRESETS).map(([n, p]) => `${n} (${p.arch})`).join(', ')}

options:
  --quant Q        ${WEIGHT_DTYPES.join('|')} (default q4_0)
  --expert-quant Q routed experts' format (default: --quant); gpt-oss as released: --quant f16 --expert-quant mxfp4
  --manifest-only  generate and hash every shard but write only the manifest (for models larger than the disk)
  --layers N       use N layers instead of the preset's (same per-layer shapes)
  --workers N      threads generating and hashing shards (default: all cores)`;

export const command: Command = {
  name: 'synth',
  summary: 'write a random-weight model of a real model shape',
  usage,
  async run(argv) {
    const { values } = parseCommandArgs(argv, {
      arch: { type: 'string' },
      preset: { type: 'string' },
      quant: { type: 'string' },
      'expert-quant': { type: 'string' },
      out: { type: 'string' },
      'manifest-only': { type: 'boolean' },
      seed: intFlag(0),
      layers: intFlag(1, 100_000),
      'shard-mib': numFlag(0.001),
      workers: intFlag(1, 1024),
    }, false);
    if (!values.arch || !values.preset || !values.out) throw new UsageError('--arch, --preset and --out are required');
    const preset = PRESETS[values.preset];
    if (!preset) throw new UsageError(`unknown preset "${values.preset}"`);
    if (preset.arch !== values.arch) throw new UsageError(`preset ${values.preset} is ${preset.arch}, not ${values.arch}`);
    const bar = progressBar(values['manifest-only'] ? 'hash' : 'synth');
    const t0 = performance.now();
    const quant = parseQuant(values.quant, 'q4_0');
    const r = await synth({
      arch: values.arch as Architecture,
      preset: values.preset,
      quant,
      expertQuant: parseQuant(values['expert-quant'], quant, '--expert-quant'),
      out: values.out,
      manifestOnly: values['manifest-only'],
      seed: numberOption(values.seed, '--seed'),
      layers: numberOption(values.layers, '--layers'),
      shardMiB: numberOption(values['shard-mib'], '--shard-mib'),
      workers: numberOption(values.workers, '--workers'),
      onProgress: (p) => bar.update(p.bytesDone, p.bytesTotal, `${p.shardsDone}/${p.shardsTotal} shards`),
    });
    bar.end();
    const s = (performance.now() - t0) / 1000;
    const t = r.manifest.totals;
    console.log(`${r.id}  ${r.manifest.name}: ${r.manifest.shards.length} shards, ${(t.bytes / 1e9).toFixed(2)} GB` +
      `${values['manifest-only'] ? ' hashed (not written)' : ''} in ${s.toFixed(1)} s (${(t.bytes / 1e6 / s).toFixed(0)} MB/s); manifest ${r.manifestBytes.length} bytes → ${values.out}`);
    return 0;
  },
};
