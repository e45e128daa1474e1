/** Browser-safe surface of the swarm. Node-only parts (TCP, files) are in ./node.ts. */
import { SwarmPeer, type SwarmPeerOptions } from './peer.ts';
import { MemoryShardStorage } from './storage.ts';
import type { BrowserLibp2pOptions } from './browser-node.ts';

export { SwarmPeer, type SwarmPeerOptions, type SwarmStats, type SignalingStatus, type PeerTraffic, type FetchedShard } from './peer.ts';
export { MemoryShardStorage, DurableShardStorage, type DurableShards, type ShardStorage } from './storage.ts';
export { assignShards, rendezvousScore, type StoragePeer, type PlacedShard } from './placement.ts';
export { shardListOf } from './model.ts';
export { SHARD_PROTOCOL, DISCOVERY_PROTOCOL, MAX_MESSAGE_BYTES, MAX_PEERS_LISTED, parseDiscoveryRequest, type DiscoveryRequest, type DiscoveryResponse, type PeerAddrs } from './protocol.ts';
export { FrameReader, encodeFrame, sendAll } from './framing.ts';
export { RateLimiter } from './rate-limiter.ts';
export { ShardUnavailableError, SwarmError, SwarmIntegrityError, SwarmProtocolError } from './errors.ts';
export type { BrowserLibp2pOptions } from './browser-node.ts';

export type BrowserPeerOptions = Omit<SwarmPeerOptions, 'node' | 'storage'> & Omit<BrowserLibp2pOptions, 'signal'> & {
  storage?: SwarmPeerOptions['storage'];
};

/**
 * A swarm peer in a browser: WebRTC to other browsers, signalled through the signaling server's
 * relay. Shards are kept in memory unless another storage is given. The WebRTC stack is loaded on
 * demand so that importing this module in Node costs nothing.
 */
export async function startBrowserPeer(opts: BrowserPeerOptions): Promise<SwarmPeer> {
  const { createBrowserLibp2p } = await import('./browser-node.ts');
  const node = await createBrowserLibp2p({
    signal: opts.signal,
    ...(opts.allowPrivateAddresses !== undefined ? { allowPrivateAddresses: opts.allowPrivateAddresses } : {}),
    ...(opts.reservationTimeoutMs !== undefined ? { reservationTimeoutMs: opts.reservationTimeoutMs } : {}),
    ...(opts.iceServers ? { iceServers: opts.iceServers } : {}),
  });
  const { allowPrivateAddresses: _a, reservationTimeoutMs: _r, iceServers: _i, storage, ...rest } = opts;
  try {
    return await SwarmPeer.start({ ...rest, node, storage: storage ?? new MemoryShardStorage() });
  } catch (err) {
    await node.stop();
    throw err;
  }
}
