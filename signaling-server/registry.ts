import type { PeerAddrs } from '../swarm/index.ts';

interface Entry {
  addrs: string[];
  expires: number;
}

/**
 * Who is in which model's swarm: peers register (model id → their addresses) and get the others back.
 * Entries expire unless renewed and go at once when the peer disconnects.
 */
export class PeerRegistry {
  private readonly models = new Map<string, Map<string, Entry>>();
  private readonly ttlMs: number;
  private readonly maxPerModel: number;
  private readonly maxModels: number;

  constructor(opts: { ttlMs?: number; maxPerModel?: number; maxModels?: number } = {}) {
    this.ttlMs = opts.ttlMs ?? 30_000;
    this.maxPerModel = opts.maxPerModel ?? 10_000;
    this.maxModels = opts.maxModels ?? 10_000;
  }

  /** Records `peer` in `model`'s swarm and returns up to `limit` other live peers of it, in random order. */
  register(model: string, peer: string, addrs: string[], limit: number, now = Date.now()): PeerAddrs[] {
    let peers = this.models.get(model);
    if (!peers) {
      if (this.models.size >= this.maxModels) throw new Error(`too many models registered (${this.maxModels})`);
      peers = new Map();
      this.models.set(model, peers);
    }
    if (!peers.has(peer) && peers.size >= this.maxPerModel) throw new Error(`model ${model} has the maximum of ${this.maxPerModel} peers`);
    if (addrs.length > 0) peers.set(peer, { addrs, expires: now + this.ttlMs });
    const out: PeerAddrs[] = [];
    for (const [id, e] of peers) {
      if (e.expires < now) peers.delete(id);
      else if (id !== peer) out.push({ id, addrs: e.addrs });
    }
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out.slice(0, limit);
  }

  /** Drops a peer from one model's swarm (it stopped serving that model). */
  withdraw(model: string, peer: string): void {
    const peers = this.models.get(model);
    peers?.delete(peer);
    if (peers?.size === 0) this.models.delete(model);
  }

  /** Drops a peer from every model (it disconnected). */
  remove(peer: string): void {
    for (const [model, peers] of this.models) {
      peers.delete(peer);
      if (peers.size === 0) this.models.delete(model);
    }
  }

  /** Registered peers per model. */
  counts(): Record<string, number> {
    return Object.fromEntries([...this.models].map(([m, p]) => [m, p.size]));
  }
}
