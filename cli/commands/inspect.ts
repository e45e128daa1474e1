import { parseCommandArgs, UsageError, type Command } from '../command.ts';
import { readModelDir } from '../../manifests/node.ts';
import { summarize } from '../../manifests/index.ts';

const usage = `usage: doppler inspect <dir> [--json]

Prints a model's id, architecture, weight formats, what the converted checkpoint stored (its
dtypes and quantization, e.g. F8_E4M3 with 128×128 block scales), parameter and byte counts (dense
vs routed experts), shard counts, and the weight bytes one token touches (all dense weights +
top-k experts per MoE layer).`;

const mb = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(2)} MB`);
const mp = (n: number): string => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} B` : `${(n / 1e6).toFixed(2)} M`);

export const command: Command = {
  name: 'inspect',
  summary: 'print what a model directory holds',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { json: { type: 'boolean' } });
    if (positionals.length !== 1) throw new UsageError('expected exactly one <dir>');
    const { manifest, id, manifestBytes } = await readModelDir(positionals[0]!);
    const s = summarize(manifest);
    if (values.json) {
      console.log(JSON.stringify({ id, manifestBytes: manifestBytes.length, layerLists: manifest.layerLists?.length ?? 0, ...s, expertQuant: manifest.expertQuant ?? s.quant, source: manifest.source ?? null, config: manifest.config }, null, 1));
      return 0;
    }
    const c = manifest.config;
    console.log([
      `model id        ${id}`,
      `name            ${s.name}`,
      `architecture    ${s.architecture}: ${c.numLayers} layers (${s.moeLayers} MoE), hidden ${c.hiddenSize}, ${s.experts.perLayer} experts top-${s.experts.topK}` +
        (s.experts.shared ? ` + ${s.experts.shared} shared` : '') + (c.mla ? ', MLA' : ''),
      `quantization    ${s.quant}${manifest.expertQuant ? ` (routed experts ${manifest.expertQuant})` : ''}`,
      `source          ${manifest.source ? `${manifest.source.dtypes.join(', ')}${manifest.source.quantization ? `; ${manifest.source.quantization}` : ''}` : 'none recorded (synth, or converted before sources were recorded)'}`,
      `parameters      ${mp(s.parameters.total)} (dense ${mp(s.parameters.dense)}, experts ${mp(s.parameters.experts)}; ${mp(s.parameters.activePerToken)} active per token)`,
      `bytes           ${mb(s.bytes.total)} (dense ${mb(s.bytes.dense)}, experts ${mb(s.bytes.experts)})`,
      `shards          ${s.shards.total} (${s.shards.dense} dense, ${s.shards.expert} expert)`,
      `per token       ${mb(s.bytesPerToken)} of weights touched (dense + ${s.experts.topK} experts × ${s.moeLayers} layers)`,
      `manifest        ${manifestBytes.length} bytes${manifest.layerLists ? ` + ${manifest.layerLists.length} layer lists (two-level)` : ''}; tokenizer files: ${Object.keys(manifest.tokenizer).join(', ') || 'none'}`,
    ].join('\n'));
    return 0;
  },
};
