import { UsageError, parseCommandArgs, type Command } from '../command.ts';
import { BACKEND_HELP, backendOptions } from '../engine-setup.ts';
import { STORE_HELP, oneModel, openCliModel, storeOptions } from '../model-source.ts';
import { readRegularFile } from '../../manifests/node.ts';

const usage = `usage: doppler perplexity <model> --ids-file F [--json]

Prints the mean next-token negative log-likelihood (nats) over the sequences in F, a JSON array of
token-id arrays (or an object with a "val_seq_ids" array, as the fixtures' golden.json has).

options:
  --ids-file F   the sequences
  --json         print {"nll","perplexity","tokens","sequences"}
${BACKEND_HELP}
${STORE_HELP}`;

function sequencesOf(data: unknown, file: string): number[][] {
  const seqs = Array.isArray(data) ? data : (data as { val_seq_ids?: unknown })?.val_seq_ids;
  if (!Array.isArray(seqs) || !seqs.every((s) => Array.isArray(s) && s.every((x) => Number.isInteger(x) && x >= 0))) {
    throw new UsageError(`${file}: expected a JSON array of arrays of token ids`);
  }
  return seqs as number[][];
}

export const command: Command = {
  name: 'perplexity',
  summary: 'mean next-token NLL of a model over token sequences',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { 'ids-file': { type: 'string' }, json: { type: 'boolean' }, ...backendOptions, ...storeOptions });
    const model = oneModel(positionals);
    if (!values['ids-file']) throw new UsageError('--ids-file is required');
    let data: unknown;
    try {
      data = JSON.parse(new TextDecoder().decode(await readRegularFile(values['ids-file'])));
    } catch (err) {
      throw new UsageError(`${values['ids-file']}: cannot read it as JSON (${(err as Error).message})`, { cause: err });
    }
    const seqs = sequencesOf(data, values['ids-file']);
    const { engine, close } = await openCliModel(model, values.backend, values);
    const r = await engine.perplexity(seqs).finally(close);
    if (values.json) process.stdout.write(JSON.stringify({ ...r, sequences: seqs.length }) + '\n');
    else process.stdout.write(`NLL ${r.nll.toFixed(5)} nats over ${r.tokens} tokens (perplexity ${r.perplexity.toFixed(3)})\n`);
    return 0;
  },
};
