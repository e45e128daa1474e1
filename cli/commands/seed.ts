import { numFlag, numberOption, parseCommandArgs, UsageError, type Command } from '../command.ts';
import { SWARM_HELP, peerOptionsFrom, swarmOptions, untilInterrupted } from './swarm-options.ts';

const usage = `usage: doppler seed <model-dir> --signal MULTIADDR [--storage-mib N] [options]

Serves a converted model directory to the model's swarm and volunteers storage for replicas.
Prints the model id and this peer's id, then serves until interrupted.

Every shard is re-hashed first (a seeder serving bad bytes would be banned by its peers).

options:
  --no-verify           skip that check (large models that were just verified)
  --storage-mib N       bytes volunteered for replicas (default: the model's size; the directory is
                        always served whole)
${SWARM_HELP}`;

export const command: Command = {
  name: 'seed',
  summary: 'serve a converted model to its swarm',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { ...swarmOptions, 'storage-mib': numFlag(0), 'no-verify': { type: 'boolean' } });
    if (positionals.length !== 1) throw new UsageError('expected one model directory');
    const opts = peerOptionsFrom(values);
    const mib = numberOption(values['storage-mib'], '--storage-mib');
    const { readModelDir, verifyModelDir } = await import('../../manifests/node.ts');
    const { startNodePeer } = await import('../../swarm/node.ts');
    const model = await readModelDir(positionals[0]!);
    if (!values['no-verify']) {
      const report = await verifyModelDir(positionals[0]!);
      if (!report.ok) {
        const bad = [...report.missing.map((h) => `missing ${h}`), ...report.corrupt.map((c) => `corrupt ${c.hash}`), ...report.notRegular.map((n) => n.reason)];
        throw new Error(`${positionals[0]} is not a complete, intact model (${bad.length} bad shards; \`doppler verify\` lists them):\n  ${bad.slice(0, 5).join('\n  ')}`);
      }
    }
    const peer = await startNodePeer({
      ...opts,
      dir: positionals[0]!,
      modelId: model.id,
      manifestBytes: model.manifestBytes,
      budgetBytes: mib !== undefined ? mib * 2 ** 20 : model.manifest.totals.bytes,
      evict: false,
      // just re-hashed above (or the user said not to)
      verifyExisting: false,
    });
    process.stdout.write(`${model.id}\n${peer.id}\n`);
    await untilInterrupted();
    await peer.stop();
    return 0;
  },
};
