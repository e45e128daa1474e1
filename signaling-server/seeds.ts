/**
 * Models the server itself seeds: each is a swarm peer on the server's own libp2p node (browsers
 * are connected to it already, and the one public port is all they can reach), listed in the
 * peer directory under the server's id.
 */
import type { Libp2p } from '@libp2p/interface';
import { summarize, type Manifest } from '../manifests/index.ts';
import { readModelDir, verifyModelDir } from '../manifests/node.ts';
import { SwarmPeer } from '../swarm/index.ts';
import { FsShardStorage } from '../swarm/node.ts';
import type { PeerRegistry } from './registry.ts';

/** What the page's model list shows for a model. */
export interface ModelInfo {
  id: string;
  name: string;
  architecture: string;
  quant: string;
  parameters: number;
  bytes: number;
  shards: number;
  /** Peers registered in its swarm (the server counts once while it seeds). */
  peers: number;
  seeded: boolean;
}

export interface Seed {
  readonly modelId: string;
  readonly dir: string;
  readonly peer: SwarmPeer;
  readonly info: Omit<ModelInfo, 'peers' | 'seeded'>;
  /** Stops serving this model (the server keeps running). */
  stop(): Promise<void>;
  readonly stopped: boolean;
}

export function modelInfo(id: string, m: Manifest): Omit<ModelInfo, 'peers' | 'seeded'> {
  const s = summarize(m);
  return { id, name: s.name, architecture: s.architecture, quant: s.quant, parameters: s.parameters.total, bytes: s.bytes.total, shards: s.shards.total };
}

/**
 * Verifies `dir` (a seeder serving bad bytes would be banned by every peer) and serves it from
 * `node`, re-registering it in the directory before each registration could lapse.
 */
export async function startSeed(node: Libp2p, registry: PeerRegistry, dir: string, addrs: () => string[], ttlMs: number): Promise<Seed> {
  const model = await readModelDir(dir);
  const report = await verifyModelDir(dir);
  if (!report.ok) {
    const bad = [...report.missing.map((h) => `missing ${h}`), ...report.corrupt.map((c) => `corrupt ${c.hash}`)];
    throw new Error(`${dir} is not a complete, intact model (${bad.length} bad shards; \`doppler verify\` lists them):\n  ${bad.slice(0, 5).join('\n  ')}`);
  }
  const peer = await SwarmPeer.start({
    node, modelId: model.id, signal: [], storage: await FsShardStorage.open(dir), manifestBytes: model.manifestBytes,
    budgetBytes: model.manifest.totals.bytes, evict: false, sharedNode: true,
  });
  const self = node.peerId.toString();
  const register = () => registry.register(model.id, self, addrs(), 0);
  register();
  const timer = setInterval(register, Math.max(1000, ttlMs / 3));
  let stopped = false;
  return {
    modelId: model.id, dir, peer, info: modelInfo(model.id, model.manifest),
    get stopped() {
      return stopped;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      registry.withdraw(model.id, self);
      await peer.stop();
    },
  };
}
