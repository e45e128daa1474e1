import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { numFlag, numberOption, parseCommandArgs, UsageError, type Command } from '../command.ts';
import { SWARM_HELP, peerOptionsFrom, swarmOptions, untilInterrupted } from './swarm-options.ts';

const usage = `usage: doppler join <model-id> --signal MULTIADDR --storage-mib N [--dir D] [options]

Joins a model's swarm as a storage peer that starts empty: it takes its share of the shards (and
copies more when peers leave) so every shard stays held by --replication peers. Prints its peer id,
then serves until interrupted.

options:
  --storage-mib N       bytes volunteered for replicas (required)
  --dir D               where shards are kept (default: a new temporary directory); a directory
                        from an earlier run is served again
${SWARM_HELP}`;

export const command: Command = {
  name: 'join',
  summary: 'join a model swarm as a storage peer',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { ...swarmOptions, 'storage-mib': numFlag(0), dir: { type: 'string' } });
    if (positionals.length !== 1) throw new UsageError('expected one model id');
    const mib = numberOption(values['storage-mib'], '--storage-mib');
    if (mib === undefined || mib <= 0) throw new UsageError('--storage-mib is required and must be positive');
    const opts = peerOptionsFrom(values);
    const { isHash } = await import('../../manifests/index.ts');
    if (!isHash(positionals[0]!)) throw new UsageError(`"${positionals[0]}" is not a model id (64 hex digits)`);
    const { startNodePeer } = await import('../../swarm/node.ts');
    const dir = values.dir ?? (await mkdtemp(joinPath(tmpdir(), 'doppler-join-')));
    const peer = await startNodePeer({ ...opts, dir, modelId: positionals[0]!, budgetBytes: mib * 2 ** 20 });
    process.stdout.write(`${peer.id}\n`);
    await untilInterrupted();
    await peer.stop();
    return 0;
  },
};
