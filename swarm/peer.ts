import type { Libp2p, PeerId, Stream, Connection } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { blake3Hex } from '../manifests/index.ts';
import { FrameReader, encodeFrame, sendAll, WRITE_CHUNK } from './framing.ts';
import { ShardUnavailableError, SwarmError, SwarmIntegrityError, SwarmProtocolError } from './errors.ts';
import { loadManifest, shardListOf, type Manifest } from './model.ts';
import { assignShards, rendezvousScore, type PlacedShard } from './placement.ts';
import {
  DISCOVERY_PROTOCOL, MAX_ADDRS, MAX_MANIFEST_BYTES, MAX_MESSAGE_BYTES, MAX_PEERS_LISTED, MAX_PIECE_BYTES, SHARD_PROTOCOL,
  bitfieldOf, hasBit, parseDiscoveryResponse, parseShardRequest, parseShardResponse,
  type HaveMessage, type PeerAddrs, type ShardRequest,
} from './protocol.ts';
import { Backoff } from './backoff.ts';
import { RateLimiter } from './rate-limiter.ts';
import { HaveGossip, pubsubOf, type Announcement } from './gossip.ts';
import { SpotChecker, sameBytes } from './spot-check.ts';
import type { ShardStorage } from './storage.ts';

export interface SwarmPeerOptions {
  /** A started libp2p node; the peer registers its protocol on it and stops it on stop(). */
  node: Libp2p;
  /** The model id: BLAKE3 hex of manifest.msgpack. */
  modelId: string;
  /** Signaling server multiaddrs (with /p2p/<id>). */
  signal: string[];
  storage: ShardStorage;
  /** manifest.msgpack when this peer already has it (a seeder); verified against modelId. */
  manifestBytes?: Uint8Array;
  /** Bytes volunteered for replicas; 0 (default) makes a peer that only fetches and serves what it holds. */
  budgetBytes?: number;
  /** Copies of each shard the storage peers keep. Default 3. */
  replication?: number;
  /** Cap on this peer's total upload rate. Default: none. */
  uploadBytesPerSec?: number;
  /**
   * Shard uploads served at once; further requests wait briefly in line, then are told "busy" and go
   * to other holders, so a popular peer (the seeder, at first) spreads distinct shards instead of
   * splitting its bandwidth over everyone's requests. Default 4.
   */
  maxUploads?: number;
  /** How often peers exchange (mesh) or announce (gossip) shard maps; three missed in a row drop the peer. Default 2000 ms. */
  heartbeatMs?: number;
  /**
   * How shard maps travel. 'gossip': announced on the model's gossipsub topic, and a peer keeps
   * only a few connections (see gossip.ts), and needs gossipsub on the node as `services.pubsub`
   * (createNodeLibp2p runs it); 'mesh': a heartbeat stream to every peer. Default 'mesh' until
   * gossip passes the multi-process heal test under load (swarm/README.md, Scale). The two
   * interoperate: a gossiping peer still answers and heartbeats mesh peers.
   */
  membership?: 'gossip' | 'mesh';
  /**
   * Gossip membership: how often a peer re-announces an unchanged shard map (changes go out at
   * once); a peer not heard from in three periods is dropped (a closed connection drops it sooner).
   * Default 5 × heartbeatMs (10 s): every announcement reaches every peer, so this period sets the
   * control bytes, and three of it bound how long a hung peer is counted.
   */
  announceMs?: number;
  /** How often the peer re-registers with the signaling server and asks for peers. Default 5000 ms. */
  discoveryMs?: number;
  /**
   * After a round in which no signaling server answered, the next comes after `firstMs`, doubling up
   * to `maxMs` (±20 % jitter), until one answers. Default: every `discoveryMs`, without backoff.
   */
  discoveryRetry?: { firstMs: number; maxMs: number };
  /** Piece size for fetching one shard from several peers at once. Default 1 MiB. */
  pieceBytes?: number;
  /** Most peers one shard is fetched from at once. Default 4. */
  maxSourcesPerShard?: number;
  /** A request slower than this (after `requestGraceMs`) is abandoned and retried elsewhere. Default 32 KiB/s. */
  minPeerBytesPerSec?: number;
  /** Fixed allowance per request on top of its size / minPeerBytesPerSec. Default 5000 ms. */
  requestGraceMs?: number;
  /**
   * How long get() goes without receiving any byte of a shard before giving up, however many peers
   * claim to hold it. Default 30 s.
   */
  unavailableAfterMs?: number;
  /**
   * A request whose answer has begun but then receives nothing for this long (a peer that sent a
   * header and went silent) is abandoned, retried at another holder, and its peer ranked last.
   * Default 5000 ms.
   */
  stallMs?: number;
  /**
   * How often a trusted peer's claims are spot-checked again (a random range of a random claimed
   * shard). Until a peer passes one, its claims do not count toward replication nor its budget
   * toward placement, except a newcomer that claimed nothing: its budget counts for this long,
   * within which it must pass a check of its first claims. Default 30 s.
   */
  spotCheckMs?: number;
  /** Keep shards fetched through get() in storage (and so serve them). Default true. */
  keepFetched?: boolean;
  /**
   * Drop held shards that placement gives to other peers once all of those hold them, so a new
   * storage peer's share moves to it. Default true for storage peers; a seeder keeps its model whole.
   */
  evict?: boolean;
  log?: (line: string) => void;
  /**
   * The node belongs to the caller and may carry peers of other models (a server seeding several):
   * shard requests are dispatched by model id, and stop() leaves the node running.
   */
  sharedNode?: boolean;
}

/** Bytes exchanged with one remote peer, both directions. */
export interface PeerTraffic {
  up: number;
  down: number;
}

/** A shard this peer fetched from the swarm (the 'shard' event's detail). */
export interface FetchedShard {
  hash: string;
  bytes: number;
  /** The peers whose bytes made it up. */
  from: string[];
  ms: number;
}

interface Remote {
  id: string;
  bits: Uint8Array;
  budget: number;
  /** Measured download rate from this peer, bytes/s (EWMA); undefined until measured. */
  rate: number | undefined;
  misses: number;
}

export interface SwarmStats {
  peerId: string;
  peers: number;
  held: number;
  usedBytes: number;
  uploadedBytes: number;
  downloadedBytes: number;
  banned: string[];
  /** Bytes exchanged with each peer this session. */
  traffic: Record<string, PeerTraffic>;
  signaling: SignalingStatus;
}

/** Whether the signaling servers answered the latest discovery round, and when the next try is. */
export interface SignalingStatus {
  /** Rounds in a row in which no signaling server answered (0: the latest one answered). */
  failures: number;
  /** The delay before the next try after the latest failure (backoff), or null while reachable. */
  retryDelayMs: number | null;
  /** When the next try is (Date.now() clock), or null while reachable. */
  retryAt: number | null;
  /** Why the latest round failed, or null. */
  error: string | null;
}

const BUSY = 'busy';
/** Longest a request waits for an upload slot before being told "busy". */
const UPLOAD_QUEUE_MS = 1000;

/** A holder that is serving its maximum of uploads: try another, or the same one a little later. */
class PeerBusyError extends SwarmProtocolError {
  override name = 'PeerBusyError';
}
/** A holder that stalled is not picked again until a measured transfer lifts its rate. */
class PeerStalledError extends SwarmProtocolError {
  override name = 'PeerStalledError';
}
const UNMEASURED_RATE = 50e6;
const STALLED_RATE = 1;
const MAX_KNOWN_PEERS = 1024;
/** Connections a gossiping peer opens to stay in the mesh (gossipsub keeps D = 6 of them per topic). */
const GOSSIP_NEIGHBOURS = 8;

/** The peers (one per model) that answer shard requests on a node. */
/** Verified bytes of a shard and the peers that supplied them. */
interface Fetched {
  bytes: Uint8Array;
  from: string[];
}

const peersOnNode = new WeakMap<Libp2p, Map<string, SwarmPeer>>();

/** Reads a shard-protocol request and hands it to the node's peer for that model. */
async function dispatch(node: Libp2p, stream: Stream, conn: Connection): Promise<void> {
  const from = `peer ${conn.remotePeer}`;
  try {
    const req = parseShardRequest(await new FrameReader(stream, from).readFrame(MAX_MESSAGE_BYTES), from);
    const peer = peersOnNode.get(node)?.get(req.model);
    if (peer) return await peer.answer(stream, conn, req);
    await sendAll(stream, encodeFrame({ t: 'err', message: `this peer serves model${peersOnNode.get(node)!.size > 1 ? 's' : ''} ${[...peersOnNode.get(node)!.keys()].join(', ')}` }));
    await stream.close();
  } catch (err) {
    stream.abort(err as Error);
  }
}

/**
 * One member of a model's swarm. Finds peers through the signaling server and through the peers it
 * meets, keeps them informed of the shards it holds, serves shards on /doppler/shard/1, fetches
 * verified shards (several sources at once, fastest first), and — when it volunteers storage — keeps
 * every shard at `replication` copies. `get(hash, signal)` has the storage layer's ShardSource shape.
 */
export class SwarmPeer extends EventTarget {
  readonly node: Libp2p;
  readonly modelId: string;
  private readonly opts: Required<Omit<SwarmPeerOptions, 'manifestBytes' | 'log' | 'uploadBytesPerSec' | 'membership'>>;
  /** Shard-map announcements over gossipsub; undefined in mesh membership. */
  private readonly gossip: HaveGossip | undefined;
  /** When each remote was last heard from (announcement or heartbeat): gossip membership expires remotes by it. */
  private readonly lastSeen = new Map<string, number>();
  /** Remotes whose announcements arrive over gossip (the rest are heartbeated as in the mesh). */
  private readonly viaGossip = new Set<string>();
  private announcedAt = 0;
  private readonly storage: ShardStorage;
  private readonly log: (line: string) => void;
  private readonly limiter: RateLimiter | undefined;
  private manifest: Manifest | undefined;
  private manifestRaw: Uint8Array | undefined;
  /** A two-level manifest's layer lists (verified), served to peers that adopt the manifest from this one. */
  private lists = new Map<string, Uint8Array>();
  private shards: PlacedShard[] = [];
  private index = new Map<string, number>();
  private readonly remotes = new Map<string, Remote>();
  private readonly known = new Map<string, string[]>();
  private readonly banned = new Set<string>();
  private readonly inflight = new Map<string, Promise<Uint8Array>>();
  private readonly writing = new Map<string, Promise<void>>();
  private replicateTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly dialing = new Set<string>();
  private timers: ReturnType<typeof setInterval>[] = [];
  private discoveryTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly retry: Backoff;
  private signaling: SignalingStatus = { failures: 0, retryDelayMs: null, retryAt: null, error: null };
  private readonly stopping = new AbortController();
  private replicating = false;
  private announceTimer: ReturnType<typeof setTimeout> | undefined;
  private uploaded = 0;
  private uploads = 0;
  private readonly uploadQueue: (() => void)[] = [];
  private downloaded = 0;
  /** When bytes of each shard being fetched last arrived: the give-up clock runs from there. */
  private readonly progressAt = new Map<string, number>();
  private readonly checker: SpotChecker;
  private readonly traffic = new Map<string, PeerTraffic>();

  private constructor(opts: SwarmPeerOptions) {
    super();
    this.node = opts.node;
    this.modelId = opts.modelId;
    this.storage = opts.storage;
    this.log = opts.log ?? (() => undefined);
    this.limiter = opts.uploadBytesPerSec ? new RateLimiter(opts.uploadBytesPerSec) : undefined;
    this.checker = new SpotChecker({
      request: (id, hash, offset, length) => this.requestBytes(id, { t: 'get', model: this.modelId, hash, offset, length }, length, length),
      held: (hash) => this.storage.has(hash),
      readLocal: (hash, offset, length) => this.storage.read(hash, offset, length),
      ban: (id, why) => this.ban(id, why),
      changed: () => this.changed(),
      log: (line) => this.log(line),
    }, opts.spotCheckMs ?? 30_000);
    this.opts = {
      node: opts.node,
      modelId: opts.modelId,
      signal: opts.signal,
      storage: opts.storage,
      budgetBytes: opts.budgetBytes ?? 0,
      replication: opts.replication ?? 3,
      heartbeatMs: opts.heartbeatMs ?? 2000,
      announceMs: opts.announceMs ?? 5 * (opts.heartbeatMs ?? 2000),
      discoveryMs: opts.discoveryMs ?? 5000,
      pieceBytes: opts.pieceBytes ?? 1024 * 1024,
      maxSourcesPerShard: opts.maxSourcesPerShard ?? 4,
      minPeerBytesPerSec: opts.minPeerBytesPerSec ?? 32 * 1024,
      requestGraceMs: opts.requestGraceMs ?? 5000,
      unavailableAfterMs: opts.unavailableAfterMs ?? 30_000,
      stallMs: opts.stallMs ?? 5000,
      spotCheckMs: opts.spotCheckMs ?? 30_000,
      keepFetched: opts.keepFetched ?? true,
      evict: opts.evict ?? true,
      maxUploads: opts.maxUploads ?? 4,
      sharedNode: opts.sharedNode ?? false,
      discoveryRetry: opts.discoveryRetry ?? { firstMs: opts.discoveryMs ?? 5000, maxMs: opts.discoveryMs ?? 5000 },
    };
    try {
      this.retry = new Backoff({ ...this.opts.discoveryRetry, ...(opts.discoveryRetry ? {} : { jitter: 0 }) });
    } catch (err) {
      throw new SwarmError(`${opts.discoveryRetry ? 'discoveryRetry' : 'discoveryMs'}: ${(err as Error).message}`, { cause: err });
    }
    const pubsub = pubsubOf(opts.node);
    const membership = opts.membership ?? 'mesh';
    if (membership === 'gossip' && !pubsub) throw new SwarmError('membership "gossip" needs a gossipsub service on the node as services.pubsub');
    this.gossip = membership === 'gossip' ? new HaveGossip(pubsub!, this.modelId, (a) => this.noteAnnouncement(a), () => this.announce(), (id) => this.banned.has(id)) : undefined;
  }

  /** Joins the swarm: registers the protocol, contacts the signaling server, starts heartbeats. */
  static async start(opts: SwarmPeerOptions): Promise<SwarmPeer> {
    if (!/^[0-9a-f]{64}$/.test(opts.modelId)) throw new SwarmError(`model id "${opts.modelId}" is not a 64-digit hex BLAKE3 hash`);
    const peer = new SwarmPeer(opts);
    if (opts.manifestBytes) await peer.adoptManifest(opts.manifestBytes, 'the local manifest');
    let onNode = peersOnNode.get(peer.node);
    if (!onNode) {
      onNode = new Map();
      peersOnNode.set(peer.node, onNode);
      await peer.node.handle(SHARD_PROTOCOL, (stream, conn) => dispatch(peer.node, stream, conn), { maxInboundStreams: 64, maxOutboundStreams: 64 });
    }
    if (onNode.has(peer.modelId)) throw new SwarmError(`this node already serves model ${peer.modelId}`);
    onNode.set(peer.modelId, peer);
    peer.node.addEventListener('peer:disconnect', (e) => peer.forget(e.detail.toString(), 'disconnected'));
    peer.node.addEventListener('connection:open', (e) => {
      if (peer.banned.has(e.detail.remotePeer.toString())) void e.detail.close().catch(() => undefined);
    });
    peer.timers.push(setInterval(() => void peer.heartbeat(), peer.opts.heartbeatMs));
    // A busy server may need a second try; a dead one refuses each at once, so this stays quick.
    let failures = await peer.discover();
    for (let attempt = 1; attempt < 3 && opts.signal.length > 0 && failures.length === opts.signal.length; attempt++) {
      await new Promise((r) => setTimeout(r, 500 * attempt));
      failures = await peer.discover();
    }
    if (opts.signal.length > 0 && failures.length === opts.signal.length) {
      // nobody could ever find this peer, nor it anyone: say so now instead of "no peer answered" later
      await peer.stop();
      throw new SwarmError(`cannot reach any signaling server:\n  ${failures.join('\n  ')}`);
    }
    peer.scheduleDiscovery(peer.opts.discoveryMs);
    return peer;
  }

  get id(): string {
    return this.node.peerId.toString();
  }

  /** How this source is named in errors and stats (ShardSource.name). */
  get name(): string {
    return `swarm of model ${this.modelId.slice(0, 12)}`;
  }

  async stop(): Promise<void> {
    this.stopping.abort(new SwarmError('swarm peer stopped'));
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.discoveryTimer);
    this.gossip?.stop();
    clearTimeout(this.announceTimer);
    clearTimeout(this.replicateTimer);
    const onNode = peersOnNode.get(this.node);
    onNode?.delete(this.modelId);
    if (!this.opts.sharedNode) await this.node.stop();
    else if (onNode?.size === 0) {
      peersOnNode.delete(this.node);
      await this.node.unhandle(SHARD_PROTOCOL);
    }
  }

  // ---------------------------------------------------------------- public reads

  /** The model's manifest: local, or fetched from a peer and verified against the model id. */
  async getManifest(signal?: AbortSignal): Promise<Manifest> {
    await this.ensureManifest(signal);
    return this.manifest!;
  }

  /** The exact manifest.msgpack bytes (hash = model id), once known. */
  manifestBytes(): Uint8Array | undefined {
    return this.manifestRaw;
  }

  /** Verified bytes of a shard or tokenizer blob of this model, from storage or from the swarm. */
  async get(hash: string, signal?: AbortSignal): Promise<Uint8Array> {
    const size = this.storage.sizeOf(hash);
    if (size !== undefined) return this.storage.read(hash, 0, size);
    await this.ensureManifest(signal);
    const list = this.lists.get(hash);
    if (list) {
      if (this.opts.keepFetched) await this.keep(hash, list);
      return list;
    }
    if (!this.index.has(hash)) throw new SwarmError(`shard ${hash} is not part of model ${this.modelId}`);
    return this.obtain(hash, this.opts.keepFetched, signal);
  }

  /** One fetch per shard at a time, however many callers want it. */
  private obtain(hash: string, keep: boolean, signal?: AbortSignal): Promise<Uint8Array> {
    let p = this.inflight.get(hash);
    if (!p) {
      // The shared fetch answers to the peer's lifetime, not to one caller's signal; callers race their own.
      // It stays in flight until stored, so a caller arriving in between neither misses storage nor fetches again.
      p = this.fetchShard(hash).then(async (bytes) => {
        // Storage that is full or failing must not cost the caller the verified bytes it asked for.
        if (keep) await this.keep(hash, bytes).catch((err: unknown) => this.log(`keeping shard ${hash.slice(0, 12)}: ${why(err)}`));
        return bytes;
      }).finally(() => this.inflight.delete(hash));
      this.inflight.set(hash, p);
    }
    const kept = p.then(async (bytes) => {
      if (keep) await this.keep(hash, bytes).catch(() => undefined);
      return bytes;
    });
    return signal ? raceAbort(kept, signal) : kept;
  }

  /** Stores a verified shard once, however many callers fetched it, and tells peers. */
  private async keep(hash: string, bytes: Uint8Array): Promise<void> {
    if (this.storage.has(hash)) return;
    let w = this.writing.get(hash);
    if (!w) {
      w = this.storage.write(hash, bytes).then(() => {
        this.changed();
        this.announce();
      }).finally(() => this.writing.delete(hash));
      this.writing.set(hash, w);
    }
    await w;
  }

  /**
   * Gets every shard and tokenizer blob of the model (verified; kept when keepFetched). Each peer
   * walks the list in its own order (rendezvous rank of shard × peer id), so peers that download
   * together want different shards at first and can trade them.
   */
  async fetchAll(opts: { concurrency?: number; signal?: AbortSignal; onShard?: (done: number, total: number) => void } = {}): Promise<number> {
    await this.ensureManifest(opts.signal);
    const order = this.shards.map((s) => ({ hash: s.hash, rank: rendezvousScore(s.hash, this.id) }))
      .sort((a, b) => (a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : 0))
      .map((s) => s.hash);
    let done = 0;
    await runLimited(order, opts.concurrency ?? 4, async (hash) => {
      await this.get(hash, opts.signal);
      opts.onShard?.(++done, order.length);
    });
    return order.length;
  }

  /** Peer ids (this peer included) currently known to hold a shard. */
  holders(hash: string): string[] {
    const out: string[] = [];
    if (this.storage.has(hash)) out.push(this.id);
    const i = this.index.get(hash);
    if (i === undefined) return out;
    for (const r of this.remotes.values()) if (hasBit(r.bits, i)) out.push(r.id);
    return out;
  }

  /**
   * Holders whose claim counts toward replication: this peer when it holds the shard, and peers
   * that passed a spot check (a bare claim is not a copy).
   */
  verifiedHolders(hash: string): string[] {
    return this.holders(hash).filter((id) => id === this.id || this.checker.trusted(id));
  }

  /** Every shard of the model with the number of live peers holding it (empty until the manifest is known). */
  replication(): Map<string, number> {
    return new Map(this.shards.map((s) => [s.hash, this.holders(s.hash).length]));
  }

  /** Swarm peers currently in contact. */
  peers(): string[] {
    return [...this.remotes.keys()];
  }

  stats(): SwarmStats {
    return {
      peerId: this.id,
      peers: this.remotes.size,
      held: this.storage.list().length,
      usedBytes: this.storage.usedBytes(),
      uploadedBytes: this.uploaded,
      downloadedBytes: this.downloaded,
      banned: [...this.banned],
      traffic: Object.fromEntries([...this.traffic].map(([id, t]) => [id, { ...t }])),
      signaling: { ...this.signaling },
    };
  }

  /** Resolves at the next change of what the swarm holds, or after `ms`. */
  waitForUpdate(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.removeEventListener('update', done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.addEventListener('update', done);
      signal?.addEventListener('abort', done);
    });
  }

  // ---------------------------------------------------------------- manifest

  /**
   * Takes a manifest verified against the model id. A two-level one's layer lists come from storage,
   * else from `peer` (the one that served the manifest, which holds them since it decoded it); all
   * at once, since placement and the shard index need every hash. They are then served from memory
   * and, listed by shardListOf, replicated like tokenizer blobs.
   */
  private async adoptManifest(bytes: Uint8Array, from: string, peer?: string, signal?: AbortSignal): Promise<void> {
    const hash = await blake3Hex(bytes);
    if (hash !== this.modelId) throw new SwarmIntegrityError(`${from}: manifest hashes to ${hash}, not model id ${this.modelId}`);
    const lists = new Map<string, Uint8Array>();
    const m = await loadManifest(bytes, from, async (list) => {
      const size = this.storage.sizeOf(list);
      const got = size !== undefined ? await this.storage.read(list, 0, size)
        : peer ? await this.requestBytes(peer, { t: 'get', model: this.modelId, hash: list, offset: 0, length: MAX_PIECE_BYTES }, MAX_PIECE_BYTES, 0, signal)
        : null;
      if (!got) throw new SwarmError(`layer list ${list} is not stored here`);
      lists.set(list, got);
      return got;
    });
    this.lists = lists;
    this.manifest = m;
    this.manifestRaw = bytes;
    this.shards = shardListOf(m);
    this.index = new Map(this.shards.map((s, i) => [s.hash, i]));
    this.changed();
  }

  private manifestPromise: Promise<void> | undefined;

  private ensureManifest(signal?: AbortSignal): Promise<void> {
    if (this.manifest) return Promise.resolve();
    this.manifestPromise ??= this.fetchManifest().finally(() => (this.manifestPromise = undefined));
    return signal ? raceAbort(this.manifestPromise, signal) : this.manifestPromise;
  }

  private async fetchManifest(): Promise<void> {
    const signal = this.stopping.signal;
    const deadline = Date.now() + this.opts.unavailableAfterMs;
    const tried = new Set<string>();
    while (!this.manifest) {
      signal?.throwIfAborted();
      // checked on every pass: peers that answer slowly or wrongly cannot stretch the wait either
      if (Date.now() > deadline) throw new ShardUnavailableError(`no peer of model ${this.modelId} answered with its manifest within ${this.opts.unavailableAfterMs / 1000} s`);
      const next = [...this.remotes.keys()].find((id) => !tried.has(id) && !this.banned.has(id));
      if (!next) {
        if (this.remotes.size === 0) void this.discover();
        await this.waitForUpdate(500, signal);
        if (this.remotes.size > 0 && [...this.remotes.keys()].every((id) => tried.has(id))) tried.clear();
        continue;
      }
      tried.add(next);
      let bytes: Uint8Array;
      try {
        const left = AbortSignal.any([signal, AbortSignal.timeout(Math.max(1, deadline - Date.now()))]);
        bytes = await this.requestBytes(next, { t: 'manifest', model: this.modelId }, MAX_MANIFEST_BYTES, 0, left);
      } catch (err) {
        this.log(`manifest from ${next} failed: ${why(err)}`);
        continue;
      }
      try {
        const left = AbortSignal.any([signal, AbortSignal.timeout(Math.max(1, deadline - Date.now()))]);
        await this.adoptManifest(bytes, `manifest from peer ${next}`, next, left);
      } catch (err) {
        this.ban(next, why(err));
      }
    }
  }

  // ---------------------------------------------------------------- serving

  /** Answers one request of this peer's model (read by the node's dispatcher). */
  async answer(stream: Stream, conn: Connection, req: ShardRequest): Promise<void> {
    const id = conn.remotePeer.toString();
    const from = `peer ${id}`;
    if (this.banned.has(id)) {
      stream.abort(new SwarmError('banned'));
      return;
    }
    try {
      if (req.t === 'have') {
        this.noteHave(id, req);
        await sendAll(stream, encodeFrame(this.haveMessage()));
      } else if (req.t === 'manifest') {
        if (!this.manifestRaw) await sendAll(stream, encodeFrame({ t: 'err', message: 'manifest not held' }));
        else await this.sendBytes(stream, this.manifestRaw, id);
      } else {
        const list = this.lists.get(req.hash);
        const size = this.storage.sizeOf(req.hash);
        if (list && size === undefined) {
          await this.sendBytes(stream, list.subarray(Math.min(req.offset, list.length), Math.min(list.length, req.offset + req.length)));
        } else if (size === undefined || req.offset > size) {
          await sendAll(stream, encodeFrame({ t: 'err', message: `shard ${req.hash} not held` }));
        } else if (!(await this.acquireUpload())) {
          await sendAll(stream, encodeFrame({ t: 'err', message: BUSY }));
        } else {
          try {
            const length = Math.min(req.length, size - req.offset);
            await this.sendBytes(stream, await this.storage.read(req.hash, req.offset, length), id);
          } finally {
            this.releaseUpload();
          }
        }
      }
      await stream.close();
    } catch (err) {
      this.log(`serving ${from}: ${why(err)}`);
      stream.abort(err as Error);
    }
  }

  /**
   * An upload slot: at once when one is free, else after waiting in line up to UPLOAD_QUEUE_MS (so a
   * slot never idles while requests are coming), else false: the requester is told to go elsewhere.
   */
  private acquireUpload(): Promise<boolean> {
    if (this.uploads < this.opts.maxUploads) {
      this.uploads++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const grant = () => {
        clearTimeout(t);
        resolve(true);
      };
      const t = setTimeout(() => {
        this.uploadQueue.splice(this.uploadQueue.indexOf(grant), 1);
        resolve(false);
      }, UPLOAD_QUEUE_MS);
      this.uploadQueue.push(grant);
    });
  }

  /** Hands the slot to the next request in line, if any. */
  private releaseUpload(): void {
    const next = this.uploadQueue.shift();
    if (next) next();
    else this.uploads--;
  }

  private trafficWith(id: string): PeerTraffic {
    let t = this.traffic.get(id);
    if (!t) this.traffic.set(id, (t = { up: 0, down: 0 }));
    return t;
  }

  private async sendBytes(stream: Stream, bytes: Uint8Array, to?: string): Promise<void> {
    await sendAll(stream, encodeFrame({ t: 'bytes', length: bytes.length }));
    const step = this.limiter?.chunkBytes ?? WRITE_CHUNK;
    for (let o = 0; o < bytes.length; o += step) {
      const chunk = bytes.subarray(o, o + step);
      await this.limiter?.take(chunk.length, this.stopping.signal);
      await sendAll(stream, chunk);
      this.uploaded += chunk.length;
      if (to) this.trafficWith(to).up += chunk.length;
    }
  }

  // ---------------------------------------------------------------- requests

  private async openStream(id: string, signal: AbortSignal): Promise<Stream> {
    return this.node.dialProtocol(peerIdFromString(id), SHARD_PROTOCOL, { signal });
  }

  /** One request whose answer is a bytes header plus raw bytes; returns them (into `into` at `at` when given). */
  private async requestBytes(id: string, req: ShardRequest, max: number, expect: number, signal?: AbortSignal, into?: Uint8Array, at = 0): Promise<Uint8Array> {
    const timeout = Math.ceil(this.opts.requestGraceMs + (1000 * (expect || MAX_MESSAGE_BYTES)) / this.opts.minPeerBytesPerSec);
    // Silence is caught long before the size-based timeout: re-armed by every chunk that arrives.
    const stall = new AbortController();
    let stallTimer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(stallTimer);
      stallTimer = setTimeout(() => stall.abort(new PeerStalledError(`peer ${id} sent nothing for ${this.opts.stallMs} ms`)), this.opts.stallMs);
    };
    // only payload counts as progress: a header alone (then silence) must not hold a fetch open
    let inPayload = false;
    const rearm = () => {
      if (inPayload && req.t === 'get') this.progressAt.set(req.hash, Date.now());
      arm();
    };
    const sig = AbortSignal.any([AbortSignal.timeout(timeout), stall.signal, this.stopping.signal, ...(signal ? [signal] : [])]);
    // armed by the first bytes: before any answer the size-based timeout applies (a loaded peer may
    // take seconds to start), after it silence is what gives a stalled peer away
    const stream = await this.openStream(id, sig);
    const onAbort = () => stream.abort(new SwarmError(`request to ${id} aborted: ${String(sig.reason)}`));
    sig.addEventListener('abort', onAbort);
    const started = performance.now();
    try {
      await sendAll(stream, encodeFrame(req), sig);
      const from = `peer ${id}`;
      const reader = new FrameReader(stream, from, rearm);
      const res = parseShardResponse(await reader.readFrame(MAX_MESSAGE_BYTES), from);
      if (res.t === 'err') throw res.message === BUSY ? new PeerBusyError(`${from}: busy`) : new SwarmProtocolError(`${from}: ${res.message}`);
      if (res.t !== 'bytes') throw new SwarmProtocolError(`${from}: answered ${res.t} to ${req.t}`);
      if (res.length > max || (expect > 0 && res.length !== expect)) {
        throw new SwarmProtocolError(`${from}: offered ${res.length} bytes, expected ${expect || `at most ${max}`}`);
      }
      inPayload = true;
      const bytes = await reader.readExact(res.length, into, at);
      if (req.t === 'get') this.progressAt.set(req.hash, Date.now());
      this.downloaded += res.length;
      this.trafficWith(id).down += res.length;
      this.measure(id, res.length, performance.now() - started);
      await stream.close().catch(() => undefined);
      return into ? into.subarray(at, at + res.length) : bytes;
    } catch (err) {
      stream.abort(err as Error);
      if (stall.signal.aborted) {
        this.demote(id);
        throw stall.signal.reason as Error;
      }
      throw sig.aborted && !signal?.aborted ? new SwarmError(`peer ${id} too slow or gone`, { cause: err }) : err;
    } finally {
      clearTimeout(stallTimer);
      sig.removeEventListener('abort', onAbort);
    }
  }

  /** A peer that went silent mid-request is ranked after every other holder until it delivers again. */
  private demote(id: string): void {
    const r = this.remotes.get(id);
    if (r) r.rate = STALLED_RATE;
    this.log(`demoted peer ${id}: stalled mid-request`);
  }

  private measure(id: string, bytes: number, ms: number): void {
    const r = this.remotes.get(id);
    if (!r || bytes < 16 * 1024) return;
    const rate = bytes / Math.max(ms / 1000, 1e-3);
    r.rate = r.rate === undefined ? rate : 0.7 * r.rate + 0.3 * rate;
  }

  private async exchangeHave(id: string): Promise<void> {
    const sig = AbortSignal.any([AbortSignal.timeout(Math.max(2000, this.opts.heartbeatMs)), this.stopping.signal]);
    const stream = await this.openStream(id, sig);
    const onAbort = () => stream.abort(new SwarmError('heartbeat timed out'));
    sig.addEventListener('abort', onAbort);
    try {
      await sendAll(stream, encodeFrame(this.haveMessage()), sig);
      const from = `peer ${id}`;
      const res = parseShardResponse(await new FrameReader(stream, from).readFrame(MAX_MESSAGE_BYTES), from);
      if (res.t !== 'have') throw new SwarmProtocolError(`${from}: ${res.t === 'err' ? res.message : `answered ${res.t} to have`}`);
      if (res.model !== this.modelId) throw new SwarmProtocolError(`${from}: is in the swarm of model ${res.model}`);
      this.noteHave(id, res);
      await stream.close().catch(() => undefined);
    } catch (err) {
      stream.abort(err as Error);
      throw err;
    } finally {
      sig.removeEventListener('abort', onAbort);
    }
  }

  // ---------------------------------------------------------------- membership

  private selfAddrs(): string[] {
    return this.node.getMultiaddrs().map(String).slice(0, MAX_ADDRS);
  }

  private haveMessage(): HaveMessage {
    const peers: PeerAddrs[] = [{ id: this.id, addrs: this.selfAddrs() }];
    for (const [id, addrs] of this.known) {
      if (peers.length >= MAX_PEERS_LISTED) break;
      if (this.remotes.has(id)) peers.push({ id, addrs });
    }
    return {
      t: 'have',
      model: this.modelId,
      bits: bitfieldOf(this.shards.map((s) => this.storage.has(s.hash) || this.lists.has(s.hash))),
      budget: Number.isFinite(this.opts.budgetBytes) ? this.opts.budgetBytes : Number.MAX_SAFE_INTEGER,
      peers,
    };
  }

  private noteHave(id: string, m: HaveMessage): void {
    if (this.banned.has(id)) return;
    this.lastSeen.set(id, Date.now());
    const r = this.remotes.get(id);
    const isNew = !r;
    const before = r?.bits;
    if (r) {
      r.bits = m.bits;
      r.budget = m.budget;
      r.misses = 0;
    } else {
      this.remotes.set(id, { id, bits: m.bits, budget: m.budget, rate: undefined, misses: 0 });
    }
    for (const p of m.peers) this.learn(p.id, p.addrs);
    // also before the manifest (no shards to check yet): whether a peer first came claiming nothing must be known at our first placement
    this.checker.maybeCheck(id, m.bits, this.shards);
    if (isNew) this.log(`peer ${id} joined (${this.remotes.size} peers)`);
    // a newcomer has heard nobody yet: the next announcement comes within a quarter period, not a whole one
    if (isNew && this.gossip) this.announcedAt = Math.min(this.announcedAt, Date.now() - (3 * this.opts.announceMs) / 4);
    if (isNew || !sameBytes(before!, m.bits)) this.changed();
  }

  /** A gossiped shard map: its publisher becomes dialable at the addresses it signed, then counts like a heartbeat. */
  private noteAnnouncement(a: Announcement): void {
    if (a.from === this.id || this.banned.has(a.from)) return;
    const addrs = a.have.peers[0]?.addrs ?? [];
    const before = this.known.get(a.from);
    this.learn(a.from, addrs);
    if (!this.remotes.has(a.from) || before?.join() !== addrs.join()) void this.remember(a.from, addrs);
    this.viaGossip.add(a.from);
    this.noteHave(a.from, { ...a.have, peers: [] });
  }

  /** Puts a peer's parsable addresses in the peer store, so it can be dialed for shards. */
  private async remember(id: string, addrs: string[]): Promise<void> {
    const mas: Multiaddr[] = [];
    for (const a of addrs) {
      try {
        mas.push(multiaddr(a));
      } catch {
        // An unparsable address from an untrusted peer is skipped; the others may work.
      }
    }
    await this.node.peerStore.merge(peerIdFromString(id), { multiaddrs: mas }).catch(() => undefined);
  }

  private learn(id: string, addrs: string[]): void {
    if (id === this.id || this.banned.has(id) || addrs.length === 0) return;
    // Untrusted peers can list anyone: keep the set of addresses to try bounded.
    if (!this.known.has(id) && this.known.size >= MAX_KNOWN_PEERS) return;
    this.known.set(id, addrs);
  }

  private forget(id: string, why: string): void {
    this.checker.forget(id);
    this.viaGossip.delete(id);
    if (this.remotes.delete(id)) {
      this.log(`peer ${id} left (${why}; ${this.remotes.size} peers)`);
      this.changed();
    }
  }

  private ban(id: string, why: string): void {
    if (this.banned.has(id)) return;
    this.banned.add(id);
    this.known.delete(id);
    this.lastSeen.delete(id);
    this.log(`banned peer ${id}: ${why}`);
    this.forget(id, 'banned');
    void this.node.hangUp(peerIdFromString(id)).catch(() => undefined);
  }

  /** Someone's holdings changed: wake waiters, re-check replication, tell peers about our own changes. */
  private changed(): void {
    this.dispatchEvent(new Event('update'));
    // Bursts of changes (many peers announcing at once) are folded into one placement pass.
    this.replicateTimer ??= setTimeout(() => {
      this.replicateTimer = undefined;
      void this.replicate();
    }, 50);
  }

  /** Pushes this peer's shard map to every peer soon (at most one push per 50 ms, never starved). */
  private announce(): void {
    this.announceTimer ??= setTimeout(() => {
      this.announceTimer = undefined;
      if (this.gossip) void this.publishHave();
      else for (const id of this.remotes.keys()) void this.exchangeHave(id).catch(() => undefined);
    }, 50);
  }

  private async publishHave(): Promise<void> {
    this.announcedAt = Date.now();
    const have = { ...this.haveMessage(), peers: [{ id: this.id, addrs: this.selfAddrs() }] };
    await this.gossip!.publish(have).catch((err: unknown) => this.log(`announcing: ${why(err)}`));
  }

  /** Gossip membership: announce when due, expire the gossiping remotes not heard from in three periods. */
  private gossipRound(): void {
    if (Date.now() - this.announcedAt >= this.opts.announceMs - this.opts.heartbeatMs / 2) void this.publishHave();
    const cutoff = Date.now() - 3 * this.opts.announceMs;
    for (const id of this.viaGossip) {
      const r = this.remotes.get(id);
      if (!r) continue;
      if ((this.lastSeen.get(id) ?? 0) < cutoff) this.forget(id, 'missed announcements');
      // announcements are rarer than heartbeats: spot checks fall due on this clock instead
      else if (this.manifest) this.checker.maybeCheck(id, r.bits, this.shards);
    }
  }

  /**
   * Mesh membership: a heartbeat stream to every remote. Gossip membership: the same only to remotes
   * heard from on the shard protocol alone (mesh-only peers, browsers; a newly dialed neighbour until
   * its first announcement), so they stay in contact as they would with a mesh peer.
   */
  private async heartbeat(): Promise<void> {
    if (this.gossip) this.gossipRound();
    await Promise.all([...this.remotes.keys()].filter((id) => !this.viaGossip.has(id)).map(async (id) => {
      try {
        await this.exchangeHave(id);
      } catch (err) {
        const r = this.remotes.get(id);
        if (r && ++r.misses >= 3) {
          this.forget(id, `missed heartbeats: ${why(err)}`);
          void this.node.hangUp(peerIdFromString(id)).catch(() => undefined);
        }
      }
    }));
    await this.meetKnown();
    await this.replicate();
  }

  /** Dials peers learned from the signaling server or from other peers that are not yet in contact. */
  private async meetKnown(): Promise<void> {
    let todo = [...this.known].filter(([id]) => !this.remotes.has(id) && !this.banned.has(id) && !this.dialing.has(id));
    // gossip needs only a few neighbours: everyone else is heard through the mesh and dialed for shards on demand
    if (this.gossip) todo = todo.slice(0, Math.max(0, GOSSIP_NEIGHBOURS - this.node.getPeers().length - this.dialing.size));
    await Promise.all(todo.map(async ([id, addrs]) => {
      this.dialing.add(id);
      try {
        const pid: PeerId = peerIdFromString(id);
        const mas: Multiaddr[] = [];
        for (const a of addrs) {
          try {
            mas.push(multiaddr(a));
          } catch {
            // An unparsable address from an untrusted peer is skipped; the others may work.
          }
        }
        await this.node.peerStore.merge(pid, { multiaddrs: mas });
        await this.exchangeHave(id);
      } catch (err) {
        this.log(`could not reach ${id}: ${why(err)}`);
        this.known.delete(id);
      } finally {
        this.dialing.delete(id);
      }
    }));
  }

  /** The next discovery round in `ms`; after it, the next one every `discoveryMs`, or after a backoff while no server answers. */
  private scheduleDiscovery(ms: number): void {
    this.discoveryTimer = setTimeout(() => {
      // discover() reports each server's failure itself; anything else thrown counts as all of them failing.
      void this.discover().catch((err: unknown) => this.opts.signal.map(() => why(err))).then((failures) => {
        if (this.stopping.signal.aborted) return;
        if (this.opts.signal.length === 0 || failures.length < this.opts.signal.length) {
          this.retry.reset();
          this.signaling = { failures: 0, retryDelayMs: null, retryAt: null, error: null };
          this.scheduleDiscovery(this.opts.discoveryMs);
          return;
        }
        const delay = this.retry.next();
        this.signaling = { failures: this.retry.failures, retryDelayMs: delay, retryAt: Date.now() + delay, error: failures.join('; ') };
        this.scheduleDiscovery(delay);
      });
    }, ms);
  }

  /** Registers with each signaling server and learns the model's other peers from it; returns the failures. */
  private async discover(): Promise<string[]> {
    const failures: string[] = [];
    await Promise.all(this.opts.signal.map(async (addr) => {
      try {
        const sig = AbortSignal.any([AbortSignal.timeout(10_000), this.stopping.signal]);
        const stream = await this.node.dialProtocol(multiaddr(addr), DISCOVERY_PROTOCOL, { signal: sig });
        try {
          await sendAll(stream, encodeFrame({ t: 'register', model: this.modelId, addrs: this.selfAddrs() }), sig);
          const res = parseDiscoveryResponse(await new FrameReader(stream, `signaling server ${addr}`).readFrame(MAX_MESSAGE_BYTES), `signaling server ${addr}`);
          if (res.t === 'err') throw new SwarmProtocolError(`signaling server ${addr}: ${res.message}`);
          for (const p of res.peers) this.learn(p.id, p.addrs);
          await stream.close().catch(() => undefined);
        } catch (err) {
          stream.abort(err as Error);
          throw err;
        }
      } catch (err) {
        failures.push(`${addr}: ${why(err)}`);
        if (!this.stopping.signal.aborted) this.log(`signaling server ${addr}: ${why(err)}`);
      }
    }));
    await this.meetKnown();
    return failures;
  }

  // ---------------------------------------------------------------- fetching

  private candidates(hash: string, exclude: Set<string>): Remote[] {
    const i = this.index.get(hash)!;
    return [...this.remotes.values()]
      .filter((r) => hasBit(r.bits, i) && !exclude.has(r.id) && !this.banned.has(r.id))
      .sort((a, b) => (b.rate ?? UNMEASURED_RATE) - (a.rate ?? UNMEASURED_RATE));
  }

  private async fetchShard(hash: string): Promise<Uint8Array> {
    const signal = this.stopping.signal;
    const size = this.shards[this.index.get(hash)!]!.size;
    const started = Date.now();
    const t0 = performance.now();
    const failed = new Set<string>();
    try {
      for (;;) {
        signal.throwIfAborted();
        // Only bytes received reset the clock: holders that claim the shard but never deliver it
        // (lying, stalled, always busy) cannot keep a fetch waiting past unavailableAfterMs.
        const last = Math.max(started, this.progressAt.get(hash) ?? 0);
        if (Date.now() - last > this.opts.unavailableAfterMs) {
          const claims = this.candidates(hash, new Set()).length;
          throw new ShardUnavailableError(`no peer of model ${this.modelId} delivered shard ${hash} within ${this.opts.unavailableAfterMs / 1000} s` +
            (claims > 0 ? ` (${claims} peer(s) claim to hold it)` : ''));
        }
        const got = await this.fetchRound(hash, size, failed, signal);
        if (got) {
          const detail: FetchedShard = { hash, bytes: got.bytes.length, from: got.from, ms: performance.now() - t0 };
          this.dispatchEvent(new CustomEvent('shard', { detail }));
          return got.bytes;
        }
      }
    } finally {
      this.progressAt.delete(hash);
    }
  }

  /** One attempt at a shard from the current holders; null when it should be retried. */
  private async fetchRound(hash: string, size: number, failed: Set<string>, signal: AbortSignal): Promise<Fetched | null> {
    const cands = this.candidates(hash, failed);
    if (cands.length === 0) {
      // Holders that were busy or slow get another chance once something changes or a moment passes.
      if (failed.size > 0 && this.candidates(hash, new Set()).length > 0) failed.clear();
      await this.waitForUpdate(250, signal);
      return null;
    }
    return size > 0 && cands.length > 1 && size >= 2 * this.opts.pieceBytes
      ? this.fetchPieces(hash, size, cands, failed, signal)
      : this.fetchWhole(hash, size, cands[0]!, failed, signal);
  }

  /** The whole shard from one peer; bans it if the bytes are wrong. Null when this peer failed. */
  private async fetchWhole(hash: string, size: number, from: Remote, failed: Set<string>, signal?: AbortSignal): Promise<Fetched | null> {
    let bytes: Uint8Array;
    try {
      bytes = await this.requestBytes(from.id, { t: 'get', model: this.modelId, hash, offset: 0, length: size || MAX_PIECE_BYTES }, MAX_PIECE_BYTES, size, signal);
    } catch (err) {
      signal?.throwIfAborted();
      if (!(err instanceof PeerBusyError)) this.log(`shard ${hash.slice(0, 12)} from ${from.id}: ${why(err)}`);
      failed.add(from.id);
      return null;
    }
    if ((await blake3Hex(bytes)) !== hash) {
      this.ban(from.id, `served shard ${hash} with wrong bytes`);
      return null;
    }
    return { bytes, from: [from.id] };
  }

  /**
   * The shard in pieces from several peers at once; each source pulls the next piece when done, so
   * faster peers serve more. When the assembled bytes fail verification, a whole copy from single
   * peers finds the good bytes and every peer whose pieces differ from them is banned.
   */
  private async fetchPieces(hash: string, size: number, cands: Remote[], failed: Set<string>, signal?: AbortSignal): Promise<Fetched | null> {
    const piece = Math.max(this.opts.pieceBytes, Math.ceil(size / (16 * cands.length)));
    const out = new Uint8Array(size);
    const queue: number[] = [];
    for (let o = 0; o < size; o += piece) queue.push(o);
    const servedBy = new Map<number, string>();
    const sources = cands.slice(0, this.opts.maxSourcesPerShard);
    let spare = cands.slice(this.opts.maxSourcesPerShard);
    const worker = async (src: Remote): Promise<void> => {
      for (;;) {
        const offset = queue.shift();
        if (offset === undefined) return;
        const length = Math.min(piece, size - offset);
        try {
          await this.requestBytes(src.id, { t: 'get', model: this.modelId, hash, offset, length }, length, length, signal, out, offset);
          servedBy.set(offset, src.id);
        } catch (err) {
          queue.unshift(offset);
          signal?.throwIfAborted();
          if (!(err instanceof PeerBusyError)) this.log(`piece ${offset} of ${hash.slice(0, 12)} from ${src.id}: ${why(err)}`);
          failed.add(src.id);
          const next = spare.shift();
          if (next) await worker(next);
          return;
        }
      }
    };
    await Promise.all(sources.map(worker));
    spare = [];
    if (queue.length > 0) return null;
    if ((await blake3Hex(out)) === hash) return { bytes: out, from: [...new Set(servedBy.values())] };

    const contributors = new Set(servedBy.values());
    const exclude = new Set(failed);
    let good: Fetched | null = null;
    for (const c of this.candidates(hash, exclude)) {
      good = await this.fetchWhole(hash, size, c, exclude, signal);
      if (good) break;
    }
    if (!good) {
      for (const id of contributors) failed.add(id);
      return null;
    }
    for (const [offset, id] of servedBy) {
      const length = Math.min(piece, size - offset);
      if (!sameBytes(out.subarray(offset, offset + length), good.bytes.subarray(offset, offset + length))) {
        this.ban(id, `served wrong bytes for piece ${offset} of shard ${hash}`);
      }
    }
    return good;
  }

  // ---------------------------------------------------------------- replication

  /** Drops replicas placed elsewhere once every owner holds them; never the last copies. */
  private async evict(owners: Map<string, string[]>): Promise<void> {
    let dropped = false;
    for (const s of this.shards) {
      const own = owners.get(s.hash)!;
      if (!this.storage.has(s.hash) || own.includes(this.id) || own.length < this.opts.replication) continue;
      const holders = new Set(this.verifiedHolders(s.hash));
      if (!own.every((id) => holders.has(id))) continue;
      await this.storage.delete(s.hash);
      dropped = true;
      this.log(`dropped replica ${s.hash.slice(0, 12)} (held by its ${own.length} owners)`);
    }
    if (dropped) {
      this.dispatchEvent(new Event('update'));
      this.announce();
    }
  }

  /** Storage peers copy the shards that rendezvous placement gives them while fewer than r peers hold them. */
  private async replicate(): Promise<void> {
    if (this.replicating || this.opts.budgetBytes <= 0 || this.stopping.signal.aborted) return;
    if (!this.manifest) {
      // A storage peer that starts empty needs the manifest to know what to hold.
      if (this.remotes.size > 0) void this.ensureManifest(this.stopping.signal).catch((err: Error) => this.log(`manifest: ${err.message}`));
      return;
    }
    this.replicating = true;
    try {
      for (;;) {
        const storagePeers = [{ id: this.id, budget: this.opts.budgetBytes }];
        // an unproven claimant's budget would let it own shards nobody then copies; a newcomer claiming nothing counts at once
        for (const r of this.remotes.values()) if (r.budget > 0 && this.checker.placeable(r.id)) storagePeers.push({ id: r.id, budget: r.budget });
        const owners = assignShards(this.shards, storagePeers, this.opts.replication);
        const todo = this.shards.filter((s) => {
          if (this.storage.has(s.hash) || !owners.get(s.hash)!.includes(this.id)) return false;
          return this.holders(s.hash).length > 0 && this.storage.usedBytes() + s.size <= this.opts.budgetBytes;
        });
        if (this.opts.evict) await this.evict(owners);
        if (todo.length === 0) return;
        let progressed = false;
        await runLimited(todo, 2, async (s) => {
          try {
            await this.obtain(s.hash, true, this.stopping.signal);
            progressed = true;
            this.log(`replicated ${s.hash.slice(0, 12)} (${this.holders(s.hash).length} holders)`);
          } catch (err) {
            if (!this.stopping.signal.aborted) this.log(`replicating ${s.hash.slice(0, 12)}: ${why(err)}`);
          }
        });
        if (!progressed) return;
      }
    } finally {
      this.replicating = false;
    }
  }
}

/** `p`, or a rejection as soon as `signal` aborts (the work behind `p` carries on for other callers). */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    // nobody else may be waiting on `p`: its later failure (the peer stopping) must not go unhandled
    p.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** A readable reason, also for what transports throw that is not an Error (a WebSocket ErrorEvent). */
function why(err: unknown): string {
  if (err instanceof Error) {
    const inner = err instanceof AggregateError && err.errors.length > 0 ? `: ${err.errors.map(why).join('; ')}` : '';
    return (err.message || err.name) + inner;
  }
  const e = err as { message?: unknown; error?: unknown; type?: unknown } | null;
  if (e && typeof e.message === 'string' && e.message) return e.message;
  if (e && e.error !== undefined) return why(e.error);
  if (e && typeof e.type === 'string') return `${e.type} event (connection refused or closed)`;
  return String(err);
}


async function runLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}
