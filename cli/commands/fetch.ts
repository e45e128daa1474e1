import { numFlag, parseCommandArgs, numberOption, UsageError, type Command } from '../command.ts';
import { SWARM_HELP, peerOptionsFrom, swarmOptions } from './swarm-options.ts';

const usage = `usage: doppler fetch <model-id> --signal MULTIADDR --out DIR [--timeout-s N] [options]

Downloads a model from its swarm: the manifest (verified against the model id) and every shard and
tokenizer blob (each verified), into DIR in the layout \`doppler convert\` writes. The manifest is
written last, so DIR is a complete model when the command exits 0. While it runs, the peer also
serves what it already has.

options:
  --out DIR             destination model directory (required)
  --timeout-s N         give up when a shard has no reachable holder for this long (default 60)
${SWARM_HELP}`;

export const command: Command = {
  name: 'fetch',
  summary: 'download a model from its swarm, verified',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { ...swarmOptions, out: { type: 'string' }, 'timeout-s': numFlag(0.001) });
    if (positionals.length !== 1) throw new UsageError('expected one model id');
    if (!values.out) throw new UsageError('--out is required');
    const opts = peerOptionsFrom(values);
    const timeout = numberOption(values['timeout-s'], '--timeout-s') ?? 60;
    const { isHash } = await import('../../manifests/index.ts');
    if (!isHash(positionals[0]!)) throw new UsageError(`"${positionals[0]}" is not a model id (64 hex digits)`);
    const { startNodePeer, fetchModel } = await import('../../swarm/node.ts');
    const started = performance.now();
    const peer = await startNodePeer({ ...opts, dir: values.out, modelId: positionals[0]!, unavailableAfterMs: timeout * 1000 });
    try {
      const tty = process.stderr.isTTY;
      await fetchModel(peer, values.out, {
        onShard: (done, total) => {
          if (tty) process.stderr.write(`\rfetched ${done}/${total} shards`);
        },
      });
      const s = peer.stats();
      process.stderr.write(`${tty ? '\n' : ''}fetched model ${positionals[0]} into ${values.out}: ${s.held} shards, ` +
        `${(s.downloadedBytes / 2 ** 20).toFixed(1)} MiB downloaded in ${((performance.now() - started) / 1000).toFixed(1)} s from ${s.peers} peers\n`);
    } finally {
      await peer.stop();
    }
    return 0;
  },
};
