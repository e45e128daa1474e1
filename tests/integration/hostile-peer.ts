/**
 * A swarm peer that lies, speaking /doppler/shard/1 by hand: it claims every shard and a large
 * budget, serves the real manifest (so it can be a model's only contact), and answers shard
 * requests the way `behaviour` says — a header and then silence, wrong bytes, or always busy.
 */
import type { Libp2p, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { createNodeLibp2p } from '../../swarm/node.ts';
import { FrameReader, MAX_MESSAGE_BYTES, SHARD_PROTOCOL, encodeFrame, sendAll } from '../../swarm/index.ts';

export type Behaviour = 'stall' | 'garbage' | 'busy';

export interface HostilePeer {
  node: Libp2p;
  id: string;
  /** Shard requests received. */
  gets: number;
  /** Sends a `have` claiming every shard to `peer` (as a heartbeat would). */
  announce(peer: Libp2p): Promise<void>;
  stop(): Promise<void>;
}

export async function startHostilePeer(opts: { modelId: string; manifest: Uint8Array; shardCount: number; behaviour: Behaviour }): Promise<HostilePeer> {
  const node = await createNodeLibp2p();
  const bits = new Uint8Array(Math.ceil(opts.shardCount / 8)).fill(0xff);
  const have = () => ({ t: 'have', model: opts.modelId, bits, budget: 2 ** 50, peers: [] });
  const open: Stream[] = [];
  const self: HostilePeer = {
    node,
    id: node.peerId.toString(),
    gets: 0,
    async announce(peer) {
      const stream = await node.dialProtocol(peer.getMultiaddrs(), SHARD_PROTOCOL);
      await sendAll(stream, encodeFrame(have()));
      await new FrameReader(stream, 'victim').readFrame(MAX_MESSAGE_BYTES);
      await stream.close().catch(() => undefined);
    },
    async stop() {
      for (const s of open) s.abort(new Error('stopped'));
      await node.stop();
    },
  };
  await node.handle(SHARD_PROTOCOL, async (stream) => {
    const req = (await new FrameReader(stream, 'victim').readFrame(MAX_MESSAGE_BYTES)) as { t: string; length?: number };
    if (req.t === 'have') {
      await sendAll(stream, encodeFrame(have()));
      await stream.close().catch(() => undefined);
    } else if (req.t === 'manifest') {
      await sendAll(stream, encodeFrame({ t: 'bytes', length: opts.manifest.length }));
      await sendAll(stream, opts.manifest);
      await stream.close().catch(() => undefined);
    } else if (opts.behaviour === 'busy') {
      // claims everything, delivers nothing, and is never caught serving bad bytes
      self.gets++;
      await sendAll(stream, encodeFrame({ t: 'err', message: 'busy' }));
      await stream.close().catch(() => undefined);
    } else {
      self.gets++;
      const length = req.length ?? 0;
      await sendAll(stream, encodeFrame({ t: 'bytes', length }));
      if (opts.behaviour === 'garbage') {
        await sendAll(stream, new Uint8Array(length).fill(0x5a));
        await stream.close().catch(() => undefined);
      } else open.push(stream); // and never another byte
    }
  }, { maxInboundStreams: 256 });
  return self;
}

export { peerIdFromString };
