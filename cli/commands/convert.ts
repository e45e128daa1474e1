import { intFlag, numFlag, numberOption, parseCommandArgs, UsageError, type Command } from '../command.ts';
import { convert, DEFAULT_SHARD_MIB, progressBar } from '../../manifests/node.ts';
import { WEIGHT_DTYPES, type WeightDtype } from '../../manifests/index.ts';

const QUANTS = WEIGHT_DTYPES.join('|');

const usage = `usage: doppler convert <hf-dir> --out <dir> [--quant ${QUANTS}] [--expert-quant Q] [--shard-mib N] [--name NAME] [--workers N]

Converts a Hugging Face MoE checkpoint (config.json + safetensors; mixtral, qwen3_moe, deepseek_v3, gpt_oss)
into an RDRR model directory: manifest.msgpack (its BLAKE3 is the model id), manifest.json, and
shards/<blake3> — one shard per routed expert, the rest packed into dense shards.

Source weights: F32, F16, BF16; FP8 (F8_E4M3, F8_E5M2) with their <name>_scale_inv block scales
(quantization_config quant_method "fp8", weight_block_size); MXFP4 packed experts
(*_blocks/*_scales, quant_method "mxfp4", as gpt-oss ships them). Any of them converts to any format.

options:
  --out DIR        output model directory (an existing model there stays valid until the new manifest lands)
  --quant Q        storage of the large matrices (default f16); norms and router gates stay f32
  --expert-quant Q storage of the routed experts (default: --quant). MXFP4 experts converted to mxfp4
                   are copied as released, bit for bit: for gpt-oss, --quant f16 --expert-quant mxfp4.
                   Fewer bytes per expert: q3_g64 (3.375 bits per weight) or q2_g32 (2.75), e.g.
                   --quant q8_0 --expert-quant q3_g64
  --shard-mib N    dense shard size limit in MiB (default ${DEFAULT_SHARD_MIB})
  --name NAME      model name in the manifest (default: the source directory's name)
  --workers N      threads encoding shards (default: 1 for models under 256 MB, else all cores)`;

export function parseQuant(value: string | undefined, fallback: WeightDtype, option = '--quant'): WeightDtype {
  if (value === undefined) return fallback;
  if (!(WEIGHT_DTYPES as readonly string[]).includes(value)) throw new UsageError(`${option} must be one of ${WEIGHT_DTYPES.join(', ')}, got "${value}"`);
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
      'expert-quant': { type: 'string' },
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
    const quant = parseQuant(values.quant, 'f16');
    const r = await convert({
      source: positionals[0]!,
      out: values.out,
      quant,
      expertQuant: parseQuant(values['expert-quant'], quant, '--expert-quant'),
      shardMiB,
      name: values.name,
      workers: numberOption(values.workers, '--workers'),
      onProgress: (p) => bar.update(p.bytesDone, p.bytesTotal, `${p.shardsDone}/${p.shardsTotal} shards`),
    });
    bar.end();
    const s = (performance.now() - t0) / 1000;
    const t = r.manifest.totals;
    const formats = r.manifest.expertQuant ? `${r.manifest.quant} (experts ${r.manifest.expertQuant})` : r.manifest.quant;
    console.log(`${r.id}  ${r.manifest.name} ${r.manifest.config.architecture} ${formats}: ${r.manifest.shards.length} shards, ` +
      `${(t.bytes / 1e6).toFixed(1)} MB in ${s.toFixed(2)} s → ${values.out}`);
    return 0;
  },
};
