/**
 * The tiered shard store: VRAM (device handles) ← RAM (bytes) ← persistent (OPFS / directory)
 * ← remote sources. A miss walks down and promotes the shard up; concurrent requests share one
 * fetch; bytes from places others can write (remote sources, and persistent files on every read,
 * since another process can replace them) are BLAKE3-verified before anything uses or stores them.
 */
import { blake3Hex, isHash } from '../manifests/index.ts';
import {
  ShardUnavailableError,
  ShardVerifyError,
  SourceError,
  StorageBudgetError,
  StorageError,
} from './errors.ts';
import { Flight, abortError, isAbort } from './flight.ts';
import { TrafficModel, createPolicy, type MetaOf, type PolicyName, type ShardMeta } from './policy.ts';
import { Tier, emptyTierStats } from './tier.ts';
import type {
  DeviceUploader,
  PersistentBackend,
  PrefetchStats,
  ShardSource,
  SourceStats,
  StoreStats,
  TierName,
  TierStats,
} from './types.ts';

export interface ShardStoreOptions<H> {
  /** Remote sources, tried in order; a source that fails or serves bad bytes hands over to the next. */
  sources?: ShardSource[];
  /** RAM tier budget in bytes (0: shards pass through without being kept). */
  ramBytes: number;
  vram?: { bytes: number; uploader: DeviceUploader<H> };
  persistent?: { backend: PersistentBackend; bytes: number };
  /** Sizes and (layer, expert) of known shards, from the manifest: lets the policy see layer traffic. */
  meta?: Map<string, ShardMeta> | MetaOf;
  /** Eviction policy of every tier (default 'reuse'; 'lru' is the baseline). */
  policy?: PolicyName;
  /** Layers of the model, if known (the policy learns it from traffic otherwise). */
  numLayers?: number;
  /** Prefetches running at once (default 4). */
  prefetchConcurrency?: number;
  /** Fetch attempts per shard across the sources (default: number of sources + 1). */
  maxAttempts?: number;
  /** Monotonic milliseconds (default performance.now). */
  now?: () => number;
}

interface Loaded {
  bytes: Uint8Array;
  from: TierName;
}

interface PrefetchJob {
  hash: string;
  priority: number;
  seq: number;
  device: boolean;
  controller: AbortController | null;
}

type Served<T> = { value: T; from: TierName };

function emptyPrefetchStats(): PrefetchStats {
  return { issued: 0, completed: 0, cancelled: 0, failed: 0, used: 0, wasted: 0, queued: 0, running: 0 };
}

export class ShardStore<H = unknown> {
  private readonly sources: ShardSource[];
  private readonly sourceStats = new Map<ShardSource, SourceStats>();
  private readonly uploader: DeviceUploader<H> | null;
  private readonly backend: PersistentBackend | null;
  private readonly vram: Tier<H> | null;
  private readonly ram: Tier<Uint8Array>;
  private readonly persistent: Tier<true> | null;
  private readonly remote: TierStats = emptyTierStats(0);
  private readonly traffic: TrafficModel;
  private readonly metaOf: MetaOf;
  private readonly policyName: PolicyName;
  private readonly maxAttempts: number;
  private readonly concurrency: number;
  private readonly now: () => number;

  private readonly byteFlights = new Map<string, Flight<Loaded>>();
  private readonly deviceFlights = new Map<string, Flight<Served<H>>>();
  private readonly pins = new Map<string, number>();
  private workingSet = new Set<string>();
  private readonly pendingWrites = new Set<Promise<void>>();
  private readonly pendingPrefetch = new Set<string>();
  /** Demand counter, and the count at each shard's latest demand (tells prefetches from demands). */
  private demands = 0;
  private readonly lastDemand = new Map<string, number>();
  private readonly queue = new Map<string, PrefetchJob>();
  private readonly running = new Map<string, PrefetchJob>();
  private seq = 0;
  private requests = 0;
  private deduplicated = 0;
  private waitMs = 0;
  private persistentWriteFailures = 0;
  private readonly prefetchCounters = emptyPrefetchStats();
  private closed = false;

  private constructor(opts: ShardStoreOptions<H>) {
    this.sources = opts.sources ?? [];
    for (const s of this.sources) this.sourceStats.set(s, { requests: 0, failures: 0, verifyFailures: 0, bytes: 0 });
    const meta = opts.meta;
    this.metaOf = meta === undefined ? () => undefined : meta instanceof Map ? (k) => meta.get(k) : meta;
    this.policyName = opts.policy ?? 'reuse';
    this.traffic = new TrafficModel(this.metaOf, opts.numLayers !== undefined ? { numLayers: opts.numLayers } : {});
    this.maxAttempts = opts.maxAttempts ?? this.sources.length + 1;
    this.concurrency = Math.max(1, opts.prefetchConcurrency ?? 4);
    this.now = opts.now ?? (() => performance.now());
    this.uploader = opts.vram?.uploader ?? null;
    this.vram = opts.vram
      ? new Tier<H>('vram', opts.vram.bytes, createPolicy(this.policyName, this.traffic), (k, e) => {
          this.uploader!.release(e.value);
          this.afterDrop(k);
        })
      : null;
    this.ram = new Tier<Uint8Array>('ram', opts.ramBytes, createPolicy(this.policyName, this.traffic), (k) => this.afterDrop(k));
    this.backend = opts.persistent?.backend ?? null;
    this.persistent = opts.persistent
      ? new Tier<true>('persistent', opts.persistent.bytes, createPolicy(this.policyName, this.traffic), (k) => {
          this.track(this.backend!.delete(k).catch(() => undefined));
          this.afterDrop(k);
        })
      : null;
  }

  /** Create a store; with a persistent tier, index what it already holds (a warm restart). */
  static async open<H = unknown>(opts: ShardStoreOptions<H>): Promise<ShardStore<H>> {
    const store = new ShardStore<H>(opts);
    if (store.backend && store.persistent) {
      let files: { hash: string; size: number }[];
      try {
        files = await store.backend.list();
      } catch (err) {
        throw new StorageError(`cannot list persistent tier ${store.backend.name}`, { cause: err });
      }
      for (const f of files) {
        if (!isHash(f.hash)) continue;
        if (store.persistent.makeRoom(f.size, () => true, `shard ${f.hash}`, false)) {
          store.persistent.insert(f.hash, true, f.size);
        } else {
          store.track(store.backend.delete(f.hash).catch(() => undefined));
        }
      }
      // files found on disk are residents, not traffic
      store.persistent.counters.bytesIn = 0;
      store.persistent.counters.evictions = 0;
    }
    return store;
  }

  /** Verified bytes of a shard. The array is shared with the store's RAM tier: do not modify it. */
  async get(hash: string, signal?: AbortSignal): Promise<Uint8Array> {
    this.checkOpen();
    checkHash(hash);
    this.requests++;
    const hit = this.ram.get(hash);
    if (hit !== undefined) {
      this.ram.counters.hits++;
      this.ram.counters.bytesOut += hit.byteLength;
      this.used(hash);
      return hit;
    }
    const t0 = this.now();
    const loaded = await this.loadBytes(hash, signal, true);
    this.used(hash);
    this.waited(loaded.from, this.now() - t0);
    return loaded.bytes;
  }

  /**
   * The shard resident in the VRAM tier, as the uploader's handle. The handle stays valid until
   * the shard is evicted: pin it, or name it in setWorkingSet, for as long as it is in use.
   */
  async getDevice(hash: string, signal?: AbortSignal): Promise<H> {
    this.checkOpen();
    checkHash(hash);
    const vram = this.requireVram();
    this.requests++;
    const hit = vram.get(hash);
    if (hit !== undefined) {
      vram.counters.hits++;
      vram.counters.bytesOut += vram.sizeOf(hash)!;
      this.used(hash);
      return hit;
    }
    const t0 = this.now();
    const served = await this.loadDevice(hash, signal, true, true);
    this.used(hash);
    this.waited(served.from, this.now() - t0);
    return served.value;
  }

  /**
   * Fetch shards in the background, highest priority first, into the VRAM tier when there is one
   * (else RAM). Re-prefetching a queued shard raises its priority; resident shards are skipped.
   */
  prefetch(hashes: Iterable<string>, priority: number, opts: { device?: boolean } = {}): void {
    this.checkOpen();
    const device = opts.device ?? this.vram !== null;
    if (device) this.requireVram();
    for (const hash of hashes) {
      checkHash(hash);
      if (device ? this.vram!.has(hash) : this.ram.has(hash)) continue;
      const queued = this.queue.get(hash);
      if (queued) {
        queued.priority = Math.max(queued.priority, priority);
        queued.device ||= device;
        continue;
      }
      if (this.running.has(hash)) continue;
      this.queue.set(hash, { hash, priority, seq: this.seq++, device, controller: null });
      this.prefetchCounters.issued++;
    }
    this.pump();
  }

  /** Drop queued prefetches of these shards and stop running ones nobody else is waiting for. */
  cancel(hashes: Iterable<string>): void {
    for (const hash of hashes) {
      if (this.queue.delete(hash)) {
        this.prefetchCounters.cancelled++;
        continue;
      }
      const job = this.running.get(hash);
      if (job?.controller && !job.controller.signal.aborted) {
        job.controller.abort(new DOMException('prefetch cancelled', 'AbortError'));
        this.prefetchCounters.cancelled++;
      }
    }
  }

  /**
   * Never evict this shard from a tier holding it until release(); pins nest. Placement stays
   * best-effort in RAM and on disk; in VRAM, getDevice fails with StorageBudgetError when pins
   * and the working set leave no room.
   */
  pin(hash: string): void {
    checkHash(hash);
    this.pins.set(hash, (this.pins.get(hash) ?? 0) + 1);
  }

  release(hash: string): void {
    const n = this.pins.get(hash);
    if (n === undefined) throw new StorageError(`release(${hash}): the shard is not pinned`);
    if (n === 1) this.pins.delete(hash);
    else this.pins.set(hash, n - 1);
  }

  /**
   * The shards the engine is using now (the current layer's experts). They are not evicted until
   * the next call replaces the set, so their device handles stay valid while kernels run.
   */
  setWorkingSet(hashes: Iterable<string>): void {
    this.workingSet = new Set(hashes);
  }

  /** The tiers holding a shard now, top first. */
  where(hash: string): TierName[] {
    const out: TierName[] = [];
    if (this.vram?.has(hash)) out.push('vram');
    if (this.ram.has(hash)) out.push('ram');
    if (this.persistent?.has(hash)) out.push('persistent');
    return out;
  }

  /** Wait for persistent writes and running prefetches to finish. */
  async flush(): Promise<void> {
    while (this.pendingWrites.size > 0 || this.running.size > 0 || this.queue.size > 0) {
      await Promise.allSettled([...this.pendingWrites, ...[...this.running.keys()].map((h) => this.runningPromise(h))]);
      if (this.pendingWrites.size === 0 && this.running.size === 0 && this.queue.size > 0) this.pump();
    }
  }

  /** Stop prefetching, finish writes, and release every device handle. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.cancel([...this.queue.keys(), ...this.running.keys()]);
    await Promise.allSettled([...this.pendingWrites, ...[...this.running.keys()].map((h) => this.runningPromise(h))]);
    this.closed = true;
    if (this.vram) {
      for (const k of [...this.vram.keys()]) {
        const e = this.vram.remove(k);
        if (e) this.uploader!.release(e.value);
      }
    }
  }

  stats(): StoreStats {
    const sources: Record<string, SourceStats> = {};
    this.sources.forEach((s, i) => {
      sources[s.name ?? `source${i}`] = { ...this.sourceStats.get(s)! };
    });
    return {
      vram: this.vram?.snapshot() ?? null,
      ram: this.ram.snapshot(),
      persistent: this.persistent?.snapshot() ?? null,
      remote: { ...this.remote, sources },
      requests: this.requests,
      deduplicated: this.deduplicated,
      waitMs: this.waitMs,
      prefetch: { ...this.prefetchCounters, queued: this.queue.size, running: this.running.size },
      persistentWriteFailures: this.persistentWriteFailures,
      policy: this.policyName,
    };
  }

  // ---- loading ----

  private loadBytes(hash: string, signal: AbortSignal | undefined, demand: boolean): Promise<Loaded> {
    const hit = this.ram.get(hash);
    if (hit !== undefined) {
      this.ram.counters.hits++;
      this.ram.counters.bytesOut += hit.byteLength;
      return Promise.resolve({ bytes: hit, from: 'ram' });
    }
    let flight = this.byteFlights.get(hash);
    if (flight && !flight.abandoned) {
      if (demand) this.deduplicated++;
    } else {
      this.ram.counters.misses++;
      const f: Flight<Loaded> = new Flight(
        (s) => this.fetchBytes(hash, s),
        () => this.byteFlights.get(hash) === f && this.byteFlights.delete(hash),
        () => this.byteFlights.get(hash) === f && this.byteFlights.delete(hash),
      );
      flight = f;
      this.byteFlights.set(hash, f);
    }
    return flight.join(signal);
  }

  private loadDevice(hash: string, signal: AbortSignal | undefined, demand: boolean, strict: boolean): Promise<Served<H>> {
    const vram = this.vram!;
    const hit = vram.get(hash);
    if (hit !== undefined) return Promise.resolve({ value: hit, from: 'vram' });
    let flight = this.deviceFlights.get(hash);
    if (flight && !flight.abandoned) {
      if (demand) this.deduplicated++;
    } else {
      vram.counters.misses++;
      const f: Flight<Served<H>> = new Flight(
        async (s) => {
          const loaded = await this.loadBytes(hash, s, false);
          if (s.aborted) throw abortError(s);
          const resident = vram.get(hash);
          if (resident !== undefined) return { value: resident, from: loaded.from };
          const size = loaded.bytes.byteLength;
          // a prefetch (not strict) never evicts to the point of failing a demand request
          if (!vram.makeRoom(size, (k) => this.evictable(k), `shard ${hash}`, strict)) {
            throw new StorageBudgetError(`no VRAM room to prefetch shard ${hash} (${size} bytes)`);
          }
          let h: H;
          try {
            h = this.uploader!.upload(loaded.bytes);
          } catch (err) {
            throw new StorageError(`uploading shard ${hash} (${size} bytes) to the device failed`, { cause: err });
          }
          vram.insert(hash, h, size);
          return { value: h, from: loaded.from };
        },
        () => this.deviceFlights.get(hash) === f && this.deviceFlights.delete(hash),
        () => this.deviceFlights.get(hash) === f && this.deviceFlights.delete(hash),
      );
      flight = f;
      this.deviceFlights.set(hash, f);
    }
    return flight.join(signal);
  }

  /** Below RAM: the persistent tier, then the sources. Promotes what it finds into RAM. */
  private async fetchBytes(hash: string, signal: AbortSignal): Promise<Loaded> {
    const fromDisk = await this.readPersistent(hash);
    if (fromDisk) {
      this.promoteRam(hash, fromDisk);
      return { bytes: fromDisk, from: 'persistent' };
    }
    const bytes = await this.fetchRemote(hash, signal);
    this.promoteRam(hash, bytes);
    this.writePersistent(hash, bytes);
    return { bytes, from: 'remote' };
  }

  private async readPersistent(hash: string): Promise<Uint8Array | null> {
    const tier = this.persistent;
    if (!tier) return null;
    if (!tier.has(hash)) {
      tier.counters.misses++;
      return null;
    }
    let bytes: Uint8Array | null;
    try {
      bytes = await this.backend!.read(hash);
    } catch {
      bytes = null;
    }
    if (bytes === null) {
      // the file vanished or cannot be read: forget it and go further down
      tier.remove(hash);
      tier.counters.misses++;
      return null;
    }
    // Every read is verified, even of a file this store wrote: another process (or tab) can replace
    // it at any time, and nothing read from a tier others can write is used unverified.
    if (!(await this.verifies(hash, bytes))) {
      tier.counters.verifyFailures++;
      tier.counters.misses++;
      tier.remove(hash);
      this.track(this.backend!.delete(hash).catch(() => undefined));
      return null;
    }
    tier.counters.hits++;
    tier.counters.bytesOut += bytes.byteLength;
    return bytes;
  }

  private async fetchRemote(hash: string, signal: AbortSignal): Promise<Uint8Array> {
    if (this.sources.length === 0) {
      this.remote.misses++;
      throw new ShardUnavailableError(`shard ${hash} is not stored locally and no source is configured`);
    }
    const errors: unknown[] = [];
    const expected = this.metaOf(hash)?.size;
    for (let attempt = 0; attempt < this.maxAttempts; attempt++) {
      if (signal.aborted) throw abortError(signal);
      const source = this.sources[attempt % this.sources.length]!;
      const st = this.sourceStats.get(source)!;
      const label = source.name ?? `source${this.sources.indexOf(source)}`;
      st.requests++;
      let bytes: Uint8Array;
      try {
        bytes = await source.get(hash, signal);
      } catch (err) {
        if (signal.aborted || isAbort(err)) throw abortError(signal);
        st.failures++;
        errors.push(new SourceError(`${label}: ${(err as Error)?.message ?? String(err)}`, { cause: err }));
        continue;
      }
      if (signal.aborted) throw abortError(signal);
      st.bytes += bytes.byteLength;
      const sizeOk = expected === undefined || bytes.byteLength === expected;
      if (!sizeOk || !(await this.verifies(hash, bytes))) {
        st.verifyFailures++;
        this.remote.verifyFailures++;
        errors.push(
          new ShardVerifyError(
            sizeOk
              ? `${label} served bytes for shard ${hash} that hash to something else`
              : `${label} served ${bytes.byteLength} bytes for shard ${hash}, the manifest says ${expected}`,
          ),
        );
        continue;
      }
      this.remote.hits++;
      this.remote.bytesOut += bytes.byteLength;
      return bytes;
    }
    this.remote.misses++;
    throw new ShardUnavailableError(
      `shard ${hash}: no source delivered verified bytes in ${this.maxAttempts} attempts (${this.sources.length} sources)`,
      { cause: new AggregateError(errors, 'attempts') },
    );
  }

  private async verifies(hash: string, bytes: Uint8Array): Promise<boolean> {
    return (await blake3Hex(bytes)) === hash;
  }

  private promoteRam(hash: string, bytes: Uint8Array): void {
    if (this.ram.has(hash)) return;
    // RAM is a cache under the caller's copy: when it cannot take a shard the bytes pass through
    if (this.ram.makeRoom(bytes.byteLength, (k) => this.evictable(k), `shard ${hash}`, false)) {
      this.ram.insert(hash, bytes, bytes.byteLength);
    }
  }

  private writePersistent(hash: string, bytes: Uint8Array): void {
    const tier = this.persistent;
    if (!tier || tier.has(hash)) return;
    const size = bytes.byteLength;
    if (!tier.makeRoom(size, (k) => this.evictable(k), `shard ${hash}`, false)) return;
    tier.reserve(size);
    this.track(
      this.backend!.write(hash, bytes).then(
        () => {
          tier.unreserve(size);
          tier.insert(hash, true, size);
        },
        () => {
          tier.unreserve(size);
          this.persistentWriteFailures++;
        },
      ),
    );
  }

  // ---- prefetch queue ----

  private pump(): void {
    while (!this.closed && this.running.size < this.concurrency && this.queue.size > 0) {
      let next: PrefetchJob | undefined;
      for (const j of this.queue.values()) {
        if (!next || j.priority > next.priority || (j.priority === next.priority && j.seq < next.seq)) next = j;
      }
      this.queue.delete(next!.hash);
      this.start(next!);
    }
  }

  private readonly jobPromises = new Map<string, Promise<void>>();

  private runningPromise(hash: string): Promise<void> {
    return this.jobPromises.get(hash) ?? Promise.resolve();
  }

  private start(job: PrefetchJob): void {
    job.controller = new AbortController();
    this.running.set(job.hash, job);
    const signal = job.controller.signal;
    const wasResident = this.where(job.hash).length > 0;
    const demandsBefore = this.demands;
    const work = job.device
      ? this.loadDevice(job.hash, signal, false, false).then(() => undefined)
      : this.loadBytes(job.hash, signal, false).then(() => undefined);
    const p = work.then(
      () => {
        this.prefetchCounters.completed++;
        // a caller that asked meanwhile shared this fetch: the shard was demanded, not prefetched
        if (!wasResident && (this.lastDemand.get(job.hash) ?? -1) < demandsBefore) {
          this.pendingPrefetch.add(job.hash);
          this.traffic.prefetched(job.hash);
        }
      },
      (err: unknown) => {
        if (!isAbort(err)) this.prefetchCounters.failed++;
      },
    );
    const done = p.finally(() => {
      this.running.delete(job.hash);
      this.jobPromises.delete(job.hash);
      this.pump();
    });
    this.jobPromises.set(job.hash, done);
  }

  // ---- bookkeeping ----

  private evictable(key: string): boolean {
    return !this.pins.has(key) && !this.workingSet.has(key);
  }

  private used(hash: string): void {
    this.lastDemand.set(hash, this.demands++);
    this.traffic.access(hash);
    if (this.pendingPrefetch.delete(hash)) this.prefetchCounters.used++;
  }

  private afterDrop(hash: string): void {
    if (this.where(hash).length > 0) return;
    if (this.pendingPrefetch.delete(hash)) this.prefetchCounters.wasted++;
  }

  private waited(from: TierName, ms: number): void {
    this.waitMs += ms;
    this.tierStats(from).waitMs += ms;
  }

  private tierStats(name: TierName): TierStats {
    switch (name) {
      case 'vram':
        return this.vram!.counters;
      case 'ram':
        return this.ram.counters;
      case 'persistent':
        return this.persistent!.counters;
      case 'remote':
        return this.remote;
    }
  }

  private track(p: Promise<void>): void {
    this.pendingWrites.add(p);
    void p.finally(() => this.pendingWrites.delete(p));
  }

  private requireVram(): Tier<H> {
    if (!this.vram) throw new StorageError('this store has no VRAM tier: give ShardStore.open a vram budget and uploader');
    return this.vram;
  }

  private checkOpen(): void {
    if (this.closed) throw new StorageError('the shard store is closed');
  }
}

function checkHash(hash: string): void {
  if (typeof hash !== 'string' || !isHash(hash)) {
    throw new StorageError(`"${String(hash).slice(0, 80)}" is not a shard hash (64 lowercase hex digits)`);
  }
}

