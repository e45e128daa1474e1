import { createLibp2p } from 'libp2p';
import { webSockets } from '@libp2p/websockets';
import { webRTC } from '@libp2p/webrtc';
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { ping } from '@libp2p/ping';
import { multiaddr } from '@multiformats/multiaddr';
import type { Libp2p } from '@libp2p/interface';
import { SwarmError } from './errors.ts';

export interface BrowserLibp2pOptions {
  /** Signaling servers (relays) to reserve a circuit on; WebRTC connections are set up through them. */
  signal: string[];
  /**
   * Let the node dial private and loopback addresses. Browsers refuse them by default; only local
   * tests need this.
   */
  allowPrivateAddresses?: boolean;
  /** STUN/TURN servers for WebRTC between browsers (the signaling server hands them to its pages). */
  iceServers?: RTCIceServer[];
  /** How long to wait for a relay reservation (a dialable /webrtc address). Default 15 s. */
  reservationTimeoutMs?: number;
}

/**
 * A browser libp2p node: WebSockets to the signaling server, a circuit-relay reservation there, and
 * WebRTC between browsers (signalled over the relay). Resolves once the node has a /webrtc address
 * that other peers can dial.
 */
export async function createBrowserLibp2p(opts: BrowserLibp2pOptions): Promise<Libp2p> {
  const node = await createLibp2p({
    addresses: { listen: ['/p2p-circuit', '/webrtc'] },
    transports: [webSockets(), webRTC(opts.iceServers ? { rtcConfiguration: { iceServers: opts.iceServers } } : {}), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(opts.allowPrivateAddresses ? { connectionGater: { denyDialMultiaddr: () => false } } : {}),
    services: { identify: identify(), ping: ping() },
  });
  const hasWebrtcAddr = () => node.getMultiaddrs().some((a) => a.toString().includes('/webrtc'));
  const ready = new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new SwarmError(`no relay reservation on ${opts.signal.join(', ')} within ${opts.reservationTimeoutMs ?? 15_000} ms`)), opts.reservationTimeoutMs ?? 15_000);
    const check = () => {
      if (!hasWebrtcAddr()) return;
      clearTimeout(t);
      node.removeEventListener('self:peer:update', check);
      resolve();
    };
    node.addEventListener('self:peer:update', check);
    check();
  });
  try {
    await Promise.any(opts.signal.map((a) => node.dial(multiaddr(a))));
    await ready;
  } catch (err) {
    await node.stop();
    throw new SwarmError('could not join through the signaling server', { cause: err });
  }
  return node;
}
