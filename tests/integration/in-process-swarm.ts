/** Swarm peers inside one process: memory transport between peers, the signaling server over loopback WebSockets. */
import { createLibp2p } from 'libp2p';
import { memory } from '@libp2p/memory';
import { webSockets } from '@libp2p/websockets';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { ping } from '@libp2p/ping';
import type { Libp2p } from '@libp2p/interface';
import { byteMeter } from '../../signaling-server/byte-meter.ts';
import type { SignalServer } from '../../signaling-server/node.ts';
import { MemoryShardStorage, SwarmPeer, type ShardStorage, type SwarmPeerOptions } from '../../swarm/index.ts';
import { swarmPubsub } from '../../swarm/gossip.ts';

export type Membership = 'mesh' | 'gossip';

export interface Member {
  peer: SwarmPeer;
  storage: ShardStorage;
  /** Bytes received on this peer's raw connections (all protocols, encrypted). */
  bytesIn: () => number;
}

/** A libp2p node on the memory transport (plus WebSockets to reach the signaling server); gossipsub only for 'gossip'. */
export async function memoryNode(membership: Membership, metrics?: ReturnType<typeof byteMeter>['metrics']): Promise<Libp2p> {
  return createLibp2p({
    addresses: { listen: [`/memory/${crypto.randomUUID()}`] },
    transports: [memory(), webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(metrics ? { metrics } : {}),
    services: { identify: identify(), ping: ping(), ...(membership === 'gossip' ? { pubsub: swarmPubsub() } : {}) },
  });
}

/**
 * Starts one swarm peer of `modelId` in this process, registered with `server`; tried up to three
 * times, since a signaling server sharing a loaded process with dozens of peers can time a
 * handshake out.
 */
export async function startMember(server: SignalServer, modelId: string, membership: Membership, extra: Partial<SwarmPeerOptions> = {}): Promise<Member> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(server, modelId, membership, extra);
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

async function startOnce(server: SignalServer, modelId: string, membership: Membership, extra: Partial<SwarmPeerOptions>): Promise<Member> {
  const meter = byteMeter();
  const node = await memoryNode(membership, meter.metrics);
  const storage = extra.storage ?? new MemoryShardStorage();
  try {
    const peer = await SwarmPeer.start({ node, modelId, signal: server.addrs, membership, ...extra, storage });
    return { peer, storage, bytesIn: meter.bytesIn };
  } catch (err) {
    await node.stop();
    throw err;
  }
}

/** Whether every shard is held by at least `r` of `members` (ground truth: their storage, not anyone's view). */
export function replicated(members: readonly Member[], shards: readonly { hash: string }[], r: number): boolean {
  return shards.every((s) => members.filter((m) => m.storage.has(s.hash)).length >= r);
}
