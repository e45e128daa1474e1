/**
 * The tab's one place for shards: OPFS (budgeted, verified on first read each session) shared by
 * the swarm peer — so whatever the engine loaded is what this tab serves to other tabs — and the
 * swarm for what OPFS lacks. Counts where every shard came from for the page's views.
 */
import { blake3Hex } from '../manifests/index.ts';
import { OpfsBackend } from '../storage/index.ts';
import { DurableShardStorage, startBrowserPeer, type FetchedShard, type SwarmPeer } from '../swarm/index.ts';

export interface ServerConfig {
  peerId: string;
  signal: string[];
  iceServers: RTCIceServer[];
}

/** One shard as the page lists it while loading. */
export interface ShardEvent {
  hash: string;
  bytes: number;
  /** 'opfs', or the peer ids that supplied it. */
  from: string[];
  ms: number;
}

export interface ShardCounters {
  opfsHits: number;
  opfsBytes: number;
  networkShards: number;
  networkBytes: number;
  /** OPFS files whose bytes did not match their name (dropped and fetched again). */
  corrupt: number;
  /** Shards OPFS could not keep (over the budget, quota exceeded): used, but not stored. */
  notStored: number;
}

const FOLDER = 'doppler-shards';

export class TabShards {
  readonly storage: DurableShardStorage;
  readonly counters: ShardCounters;
  /** Shards asked of the swarm and not yet received. */
  waiting = 0;
  /** The latest reason a shard could not be stored, for the page to show. */
  storageProblem: string | null = null;
  readonly log: ShardEvent[] = [];
  private readonly verified = new Set<string>();
  private peer: SwarmPeer | undefined;
  private readonly peerReady: Promise<SwarmPeer>;
  private readonly onShard: (e: ShardEvent) => void;
  private local: Uint8Array | undefined;
  private readonly modelId: string;

  private constructor(storage: DurableShardStorage, counters: ShardCounters, modelId: string, local: Uint8Array | undefined, peerReady: Promise<SwarmPeer>, onShard: (e: ShardEvent) => void) {
    this.storage = storage;
    this.counters = counters;
    this.modelId = modelId;
    this.local = local;
    this.onShard = onShard;
    this.peerReady = peerReady.then((p) => {
      this.peer = p;
      p.addEventListener('shard', (e) => {
        const d = (e as CustomEvent<FetchedShard>).detail;
        this.counters.networkShards++;
        this.counters.networkBytes += d.bytes;
        this.note({ hash: d.hash, bytes: d.bytes, from: d.from, ms: d.ms });
      });
      return p;
    });
    // A failed join surfaces when a shard is needed from the swarm; a warm start never needs one.
    this.peerReady.catch(() => undefined);
  }

  /**
   * Opens OPFS under `budgetBytes` and joins `modelId`'s swarm through the server the page came from
   * (in the background: a warm start reads OPFS without waiting for it).
   */
  static async open(config: ServerConfig, modelId: string, budgetBytes: number, onShard: (e: ShardEvent) => void): Promise<TabShards> {
    const storage = await DurableShardStorage.open(await OpfsBackend.open(FOLDER), budgetBytes);
    // The manifest is kept in OPFS under its own hash, the model id, so a warm start needs no peer.
    let manifestBytes: Uint8Array | undefined;
    if (storage.has(modelId)) {
      const bytes = await storage.read(modelId, 0, storage.sizeOf(modelId)!).catch(() => null);
      if (bytes && (await blake3Hex(bytes)) === modelId) manifestBytes = bytes;
      else await storage.delete(modelId);
    }
    const counters: ShardCounters = { opfsHits: 0, opfsBytes: 0, networkShards: 0, networkBytes: 0, corrupt: 0, notStored: 0 };
    let self: TabShards | undefined;
    const peer = startBrowserPeer({
      signal: config.signal, modelId, storage, iceServers: config.iceServers,
      // The peer keeps going when a shard cannot be stored; the page shows why.
      log: (line) => {
        if (!line.startsWith('keeping shard')) return;
        counters.notStored++;
        if (self) self.storageProblem = line;
      },
      allowPrivateAddresses: isPrivateHost(location.hostname), heartbeatMs: 1000, discoveryMs: 2000,
      // A lost server is knocked on after 1 s, 2 s, 4 s … 30 s (jittered), not every 2 s by every tab.
      discoveryRetry: { firstMs: 1000, maxMs: 30_000 },
      ...(manifestBytes ? { manifestBytes } : {}),
    });
    self = new TabShards(storage, counters, modelId, manifestBytes, peer, onShard);
    return self;
  }

  /** Whether the manifest came from OPFS (a warm start). */
  get manifestWasLocal(): boolean {
    return this.local !== undefined;
  }

  /** manifest.msgpack: from OPFS, else from a peer (verified against the model id by the peer) and kept. */
  async manifestBytes(): Promise<Uint8Array> {
    if (this.local) return this.local;
    const peer = await this.peerReady;
    await peer.getManifest();
    const bytes = peer.manifestBytes()!;
    await this.storage.write(this.modelId, bytes);
    this.local = bytes;
    return bytes;
  }

  /** The swarm peer once joined (null before). */
  get swarm(): SwarmPeer | null {
    return this.peer ?? null;
  }

  joined(): Promise<SwarmPeer> {
    return this.peerReady;
  }

  /** Verified bytes of a shard: OPFS when it holds a good copy, else the swarm (which stores it in OPFS). */
  async get(hash: string): Promise<Uint8Array> {
    if (this.storage.has(hash)) {
      const t0 = performance.now();
      const bytes = await this.storage.read(hash, 0, this.storage.sizeOf(hash)!).catch(() => null);
      if (bytes && (this.verified.has(hash) || (await blake3Hex(bytes)) === hash)) {
        this.verified.add(hash);
        this.counters.opfsHits++;
        this.counters.opfsBytes += bytes.length;
        this.note({ hash, bytes: bytes.length, from: ['opfs'], ms: performance.now() - t0 });
        return bytes;
      }
      // A damaged file is never served, to the engine or to other tabs.
      this.counters.corrupt++;
      await this.storage.delete(hash);
    }
    this.waiting++;
    try {
      const peer = await this.peerReady;
      const bytes = await peer.get(hash);
      this.verified.add(hash);
      return bytes;
    } finally {
      this.waiting--;
    }
  }

  private note(e: ShardEvent): void {
    this.log.push(e);
    this.onShard(e);
  }
}

/** Loopback and private-network hosts: the browser must be allowed to dial them (local use, tests). */
export function isPrivateHost(h: string): boolean {
  return h === 'localhost' || /^(127\.|10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/.test(h) || h === '[::1]' || h.endsWith('.local');
}
