/** Browser entry for the swarm tests and bench: a tab-side swarm peer driven through window.dopplerSwarm. */
import { MemoryShardStorage, startBrowserPeer, type SwarmPeer } from '../../swarm/index.ts';
import { blake3Hex, decodeManifest } from '../../manifests/index.ts';

let peer: SwarmPeer | undefined;
let storage: MemoryShardStorage | undefined;

async function load(path: string): Promise<Uint8Array> {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

const api = {
  /** Joins the model swarm; with `seedFrom`, first loads that served model directory into memory. */
  async start(opts: { signal: string[]; modelId: string; seedFrom?: string }): Promise<string> {
    storage = new MemoryShardStorage();
    let manifestBytes: Uint8Array | undefined;
    if (opts.seedFrom) {
      manifestBytes = await load(`${opts.seedFrom}manifest.msgpack`);
      const m = decodeManifest(manifestBytes);
      for (const h of new Set([...m.shards.map((s) => s.hash), ...Object.values(m.tokenizer)])) {
        const b = await load(`${opts.seedFrom}shards/${h}`);
        if ((await blake3Hex(b)) !== h) throw new Error(`served shard ${h} is corrupt`);
        await storage.write(h, b);
      }
    }
    peer = await startBrowserPeer({
      signal: opts.signal, modelId: opts.modelId, storage, allowPrivateAddresses: true,
      heartbeatMs: 500, discoveryMs: 1000, ...(manifestBytes ? { manifestBytes } : {}),
    });
    return peer.id;
  },
  peers(): string[] {
    return peer!.peers();
  },
  /** Remote addresses of the open connections to a peer (to see that they are direct WebRTC). */
  connections(id: string): { addr: string; limited: boolean }[] {
    return peer!.node.getConnections().filter((c) => c.remotePeer.toString() === id).map((c) => ({ addr: c.remoteAddr.toString(), limited: c.limits !== undefined }));
  },
  /** Gets every blob of the model through the swarm and checks each hash here, in the tab. */
  async fetchAll(): Promise<{ blobs: number; bytes: number; ms: number; verified: boolean }> {
    const m = await peer!.getManifest();
    const hashes = [...new Set([...m.shards.map((s) => s.hash), ...Object.values(m.tokenizer)])];
    const t0 = performance.now();
    let bytes = 0;
    let verified = true;
    for (const h of hashes) {
      const b = await peer!.get(h);
      bytes += b.length;
      if ((await blake3Hex(b)) !== h) verified = false;
    }
    return { blobs: hashes.length, bytes, ms: performance.now() - t0, verified };
  },
  stats() {
    return peer!.stats();
  },
};

declare global {
  interface Window {
    dopplerSwarm: typeof api;
  }
}
window.dopplerSwarm = api;
