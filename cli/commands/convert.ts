import { intFlag, numFlag, numberOption, parseCommandArgs, UsageError, type Command } from '../command.ts';
import { convert, DEFAULT_SHARD_MIB, progressBar } from '../../manifests/node.ts';
import type { WeightDtype } from '../../manifests/index.ts';

const QUANTS: readonly WeightDtype[] = ['f32', 'f16', 'q8_0', 'q4_0'];

const usage = `usage: doppler convert <hf-dir> --out <dir> [--quant f32|f16|q8_0|q4_0] [--shard-mib N] [--name NAME] [--workers N]

Converts a Hugging Face MoE checkpoint (config.json + safetensors, F32/F16/BF16; mixtral, qwen3_moe,
deepseek_v3) into an RDRR model directory: manifest.msgpack (its BLAKE3 is the model id),
manifest.json, and shards/<blake3> — one shard per routed expert, the rest packed into dense shards.

options:
  --out DIR        output model directory (an existing model there stays valid until the new manifest lands)
  --quant Q        storage of the large matrices (default f16); norms and router gates stay f32
  --shard-mib N    dense shard size limit in MiB (default ${DEFAULT_SHARD_MIB})
  --name NAME      model name in the manifest (default: the source directory's name)
  --workers N      threads encoding shards (default: 1 for models under 256 MB, else all cores)`;

export function parseQuant(value: string | undefined, fallback: WeightDtype): WeightDtype {
  if (value === undefined) return fallback;
  if (!(QUANTS as readonly string[]).includes(value)) throw new UsageError(`--quant must be one of ${QUANTS.join(', ')}, got "${value}"`);
  return value as WeightDtype;
}

export const command: Command = {
  name: 'convert',
  summary: 'convert a Hugging Face MoE checkpoint to RDRR shards',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, {
      out: { type: 'string' },
      quant: { type: 'string' },
      'shard-mib': numFlag(0.001),
      name: { type: 'string' },
      workers: intFlag(1, 1024),
    });
    if (positionals.length !== 1) throw new UsageError('expected exactly one <hf-dir>');
    if (!values.out) throw new UsageError('--out is required');
    const shardMiB = numberOption(values['shard-mib'], '--shard-mib');
    if (shardMiB !== undefined && shardMiB <= 0) throw new UsageError('--shard-mib must be positive');
    const bar = progressBar('convert');
    const t0 = performance.now();
    const r = await convert({
      source: positionals[0]!,
      out: values.out,
      quant: parseQuant(values.quant, 'f16'),
      shardMiB,
      name: values.name,
      workers: numberOption(values.workers, '--workers'),
      onProgress: (p) => bar.update(p.bytesDone, p.bytesTotal, `${p.shardsDone}/${p.shardsTotal} shards`),
    });
    bar.end();
    const s = (performance.now() - t0) / 1000;
    const t = r.manifest.totals;
    console.log(`${r.id}  ${r.manifest.name} ${r.manifest.config.architecture} ${r.manifest.quant}: ${r.manifest.shards.length} shards, ` +
      `${(t.bytes / 1e6).toFixed(1)} MB in ${s.toFixed(2)} s → ${values.out}`);
    return 0;
  },
};
