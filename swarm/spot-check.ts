import { blake3Hex } from '../manifests/index.ts';
import type { PlacedShard } from './placement.ts';
import { hasBit } from './protocol.ts';

/** A claimed range read compared byte for byte with our own copy. */
export const SPOT_RANGE_BYTES = 64 * 1024;
/** Shards up to this size we do not hold are spot-checked whole, against their BLAKE3 name. */
export const SPOT_WHOLE_MAX_BYTES = 4 * 1024 * 1024;

export interface SpotCheckIo {
  /** `length` bytes at `offset` of a shard, from peer `id` (rejects with `busy`, timeouts, protocol errors). */
  request(id: string, hash: string, offset: number, length: number): Promise<Uint8Array>;
  /** Our own copy, when held. */
  held(hash: string): boolean;
  readLocal(hash: string, offset: number, length: number): Promise<Uint8Array>;
  /** A proven lie: the peer served bytes that are not the shard it claims. */
  ban(id: string, why: string): void;
  /** Trust changed: placement and replica counts must be recomputed. */
  changed(): void;
  log(line: string): void;
}

interface State {
  trusted: boolean;
  /**
   * Claimed nothing when first seen and has not failed a check: its budget counts for placement
   * until `since + recheckMs`, or a check of its first claims, decides.
   */
  fresh: boolean;
  since: number;
  checking: boolean;
  lastCheck: number;
}

/**
 * Claims must be earned: a peer's shard map counts toward replication and its budget toward
 * placement only after it has served a random range of a random shard it claims (compared with
 * our copy, or a small shard verified whole against its hash), and it is re-checked from time to
 * time. Wrong bytes ban it like a corrupter; a check it fails to answer (busy, silent, "not held")
 * leaves it untrusted until it passes one.
 *
 * A newcomer that claims nothing has nothing to lie about yet, and nothing to be checked on: its
 * budget counts for placement at once (else no peer would place a shard on it, and it would never
 * hold one to be checked on), for one re-check period, within which it must pass a check of what
 * it then claims. A silent check or the period running out ends that.
 */
export class SpotChecker {
  private readonly io: SpotCheckIo;
  private readonly recheckMs: number;
  private readonly state = new Map<string, State>();

  constructor(io: SpotCheckIo, recheckMs: number) {
    this.io = io;
    this.recheckMs = recheckMs;
  }

  trusted(id: string): boolean {
    return this.state.get(id)?.trusted === true;
  }

  /** Whether `id`'s budget enters placement: trusted, or a fresh newcomer still within its grace. */
  placeable(id: string): boolean {
    const s = this.state.get(id);
    return s !== undefined && (s.trusted || (s.fresh && Date.now() - s.since < this.recheckMs));
  }

  forget(id: string): void {
    this.state.delete(id);
  }

  /** Starts a check of `id` when one is due: soon for an unproven peer, every recheckMs for a trusted one. */
  maybeCheck(id: string, bits: Uint8Array, shards: readonly PlacedShard[]): void {
    const s = this.state.get(id) ?? { trusted: false, fresh: bits.every((b) => b === 0), since: Date.now(), checking: false, lastCheck: 0 };
    this.state.set(id, s);
    const due = s.trusted ? this.recheckMs : 1000;
    if (s.checking || Date.now() - s.lastCheck < due) return;
    const pick = this.pick(bits, shards);
    if (!pick) return;
    s.checking = true;
    s.lastCheck = Date.now();
    void this.check(id, s, pick)
      .catch((err: unknown) => this.io.log(`spot check of ${id} failed: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => (s.checking = false));
  }

  /** A claimed shard to check: one we hold (range compare) if any, else a small one (whole). */
  private pick(bits: Uint8Array, shards: readonly PlacedShard[]): { shard: PlacedShard; local: boolean } | null {
    const local: PlacedShard[] = [];
    const small: PlacedShard[] = [];
    shards.forEach((s, i) => {
      if (s.size === 0 || !hasBit(bits, i)) return;
      if (this.io.held(s.hash)) local.push(s);
      else if (s.size <= SPOT_WHOLE_MAX_BYTES) small.push(s);
    });
    const pool = local.length > 0 ? local : small;
    if (pool.length === 0) return null;
    return { shard: pool[Math.floor(Math.random() * pool.length)]!, local: local.length > 0 };
  }

  private async check(id: string, s: State, { shard, local }: { shard: PlacedShard; local: boolean }): Promise<void> {
    const length = local ? Math.min(SPOT_RANGE_BYTES, shard.size) : shard.size;
    const offset = local ? Math.floor(Math.random() * (shard.size - length + 1)) : 0;
    let theirs: Uint8Array;
    try {
      theirs = await this.io.request(id, shard.hash, offset, length);
    } catch (err) {
      // busy is no verdict: ask again at the next shard map
      if (err instanceof Error && err.name === 'PeerBusyError') {
        s.lastCheck = 0;
        return;
      }
      if (s.trusted || s.fresh) {
        s.trusted = false;
        s.fresh = false;
        this.io.changed();
      }
      this.io.log(`spot check of ${id} on ${shard.hash.slice(0, 12)} got no answer: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    let ok: boolean;
    try {
      ok = local ? sameBytes(theirs, await this.io.readLocal(shard.hash, offset, length)) : (await blake3Hex(theirs)) === shard.hash;
    } catch (err) {
      // our own copy went away meanwhile (evicted): no verdict
      this.io.log(`spot check of ${id}: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    if (!ok) {
      this.io.ban(id, `claims shard ${shard.hash} but served other bytes at ${offset} in a spot check`);
      this.state.delete(id);
      return;
    }
    if (!s.trusted) {
      s.trusted = true;
      this.io.log(`peer ${id} passed a spot check`);
      this.io.changed();
    }
  }
}

/** Equal length and bytes. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
