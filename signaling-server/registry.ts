import type { PeerAddrs } from '../swarm/index.ts';

interface Entry {
  addrs: string[];
  expires: number;
}

/** Limits of the directory; every one is per server, per model, or per peer so no peer can use up the rest. */
export interface RegistryLimits {
  /** A registration lapses unless renewed within this time. Default 30 s. */
  ttlMs?: number;
  /** Most peers listed under one model. Default 10,000. */
  maxPerModel?: number;
  /** Most models listed at once. Default 10,000. */
  maxModels?: number;
  /** Most models one peer may be registered under at once (a peer serves a few models, not thousands). Default 8. */
  maxModelsPerPeer?: number;
}

/**
 * Who is in which model's swarm: peers register (model id → their addresses) and get the others back.
 * Entries expire unless renewed and go at once when the peer disconnects; `sweep` returns the
 * memory of lapsed entries and of models nobody is registered under any more.
 */
export class PeerRegistry {
  private readonly models = new Map<string, Map<string, Entry>>();
  /** Models each peer is registered under, for the per-peer cap and for removal. */
  private readonly byPeer = new Map<string, Set<string>>();
  private readonly ttlMs: number;
  private readonly maxPerModel: number;
  private readonly maxModels: number;
  private readonly maxModelsPerPeer: number;

  constructor(opts: RegistryLimits = {}) {
    this.ttlMs = opts.ttlMs ?? 30_000;
    this.maxPerModel = opts.maxPerModel ?? 10_000;
    this.maxModels = opts.maxModels ?? 10_000;
    this.maxModelsPerPeer = opts.maxModelsPerPeer ?? 8;
  }

  /** Records `peer` in `model`'s swarm and returns up to `limit` other live peers of it, in random order. */
  register(model: string, peer: string, addrs: string[], limit: number, now = Date.now()): PeerAddrs[] {
    const mine = this.byPeer.get(peer);
    if (!mine?.has(model) && (mine?.size ?? 0) >= this.maxModelsPerPeer) {
      // lapsed registrations of this peer do not count against it
      this.sweep(now);
      if ((this.byPeer.get(peer)?.size ?? 0) >= this.maxModelsPerPeer) throw new Error(`this peer is already registered under ${this.maxModelsPerPeer} models`);
    }
    let peers = this.models.get(model);
    if (!peers) {
      if (this.models.size >= this.maxModels) this.sweep(now);
      if (this.models.size >= this.maxModels) throw new Error(`too many models registered (${this.maxModels})`);
      peers = new Map();
      this.models.set(model, peers);
    }
    if (!peers.has(peer) && peers.size >= this.maxPerModel) throw new Error(`model ${model} has the maximum of ${this.maxPerModel} peers`);
    if (addrs.length > 0) {
      peers.set(peer, { addrs, expires: now + this.ttlMs });
      const set = this.byPeer.get(peer) ?? new Set<string>();
      set.add(model);
      this.byPeer.set(peer, set);
    }
    const out: PeerAddrs[] = [];
    for (const [id, e] of peers) {
      if (e.expires < now) this.drop(model, id);
      else if (id !== peer) out.push({ id, addrs: e.addrs });
    }
    if (peers.size === 0) this.models.delete(model);
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
    for (const model of this.byPeer.get(peer) ?? []) this.drop(model, peer);
    this.byPeer.delete(peer);
  }

  /** Forgets every lapsed registration, and models left with no peer. */
  sweep(now = Date.now()): void {
    for (const [model, peers] of this.models) {
      for (const [id, e] of peers) if (e.expires < now) this.drop(model, id);
    }
  }

  /** Registered peers per model. */
  counts(): Record<string, number> {
    return Object.fromEntries([...this.models].map(([m, p]) => [m, p.size]));
  }

  private drop(model: string, peer: string): void {
    const peers = this.models.get(model);
    peers?.delete(peer);
    if (peers?.size === 0) this.models.delete(model);
    const mine = this.byPeer.get(peer);
    mine?.delete(model);
    if (mine?.size === 0) this.byPeer.delete(peer);
  }
}
