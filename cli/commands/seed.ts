import { numberOption, parseCommandArgs, UsageError, type Command } from '../command.ts';
import { SWARM_HELP, peerOptionsFrom, swarmOptions, untilInterrupted } from './swarm-options.ts';

const usage = `usage: doppler seed <model-dir> --signal MULTIADDR [--storage-mib N] [options]

Serves a converted model directory to the model's swarm and volunteers storage for replicas.
Prints the model id and this peer's id, then serves until interrupted.

options:
  --storage-mib N       bytes volunteered for replicas (default: the model's size; the directory is
                        always served whole)
${SWARM_HELP}`;

export const command: Command = {
  name: 'seed',
  summary: 'serve a converted model to its swarm',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { ...swarmOptions, 'storage-mib': { type: 'string' } });
    if (positionals.length !== 1) throw new UsageError('expected one model directory');
    const opts = peerOptionsFrom(values);
    const mib = numberOption(values['storage-mib'], '--storage-mib');
    const { readModelDir } = await import('../../manifests/node.ts');
    const { startNodePeer } = await import('../../swarm/node.ts');
    const model = await readModelDir(positionals[0]!);
    const peer = await startNodePeer({
      ...opts,
      dir: positionals[0]!,
      modelId: model.id,
      manifestBytes: model.manifestBytes,
      budgetBytes: mib !== undefined ? mib * 2 ** 20 : model.manifest.totals.bytes,
      evict: false,
    });
    process.stdout.write(`${model.id}\n${peer.id}\n`);
    await untilInterrupted();
    await peer.stop();
    return 0;
  },
};
