import type { Act, Backend } from '../kernels/index.ts';
import { layerWindow, type ModelConfig } from '../manifests/index.ts';

/**
 * Per-layer attention cache. Standard attention keeps keys and values per KV head; latent attention
 * (MLA) keeps one row of [normalised latent | rotated RoPE key] per token, kvLoraRank + ropeDim
 * floats, shared by every head. `length` counts committed positions: rows past it may hold the
 * partial writes of a failed step and are never read.
 *
 * A layer with a sliding window keeps a ring buffer: position t in row t % rows, holding the
 * window (and, while a step of m tokens runs, window - 1 + m rows, so the step's new keys never
 * overwrite a key one of its queries still sees). `reserve` grows a ring before a step, `settle`
 * shrinks it back after; both keep the last window - 1 committed positions, all a later step
 * reads. So a windowed layer cannot go back: lowering `length` below a committed position would
 * need keys the ring no longer holds.
 */
export class KvCache {
  readonly capacity: number;
  readonly keys: Act[];
  /** Standard attention only (latent attention reads values from `keys`). */
  readonly values: Act[];
  length = 0;
  private readonly backend: Backend;
  /** Per layer: its window, or null for full attention (row t holds position t). */
  private readonly windows: (number | null)[];
  private readonly latent: boolean;

  constructor(backend: Backend, cfg: ModelConfig, capacity: number) {
    this.backend = backend;
    this.capacity = capacity;
    this.keys = [];
    this.values = [];
    this.latent = cfg.mla !== null;
    this.windows = [];
    for (let l = 0; l < cfg.numLayers; l++) {
      const window = layerWindow(cfg, l);
      this.windows.push(window);
      const rows = window === null ? capacity : Math.min(capacity, window);
      if (cfg.mla) {
        this.keys.push(backend.act(rows, cfg.mla.kvLoraRank + cfg.mla.qkRopeHeadDim));
      } else {
        this.keys.push(backend.act(rows, cfg.numKvHeads * cfg.headDim));
        this.values.push(backend.act(rows, cfg.numKvHeads * cfg.headDim));
      }
    }
  }

  /** Whether `length` may be lowered: false once any layer is a ring buffer, which keeps only its window. */
  get rewindable(): boolean {
    return this.windows.every((w) => w === null);
  }

  /** Bytes per cached token of a full-context layer, across all layers. */
  static bytesPerToken(cfg: ModelConfig): number {
    return rowBytes(cfg) * cfg.numLayers;
  }

  /** Bytes a cache of `capacity` positions holds between steps (windowed layers keep only their window). */
  static bytesFor(cfg: ModelConfig, capacity: number): number {
    let rows = 0;
    for (let l = 0; l < cfg.numLayers; l++) rows += Math.min(capacity, layerWindow(cfg, l) ?? capacity);
    return rows * rowBytes(cfg);
  }

  /** The window and ring layout layer `l`'s attention reads (nothing for full-context layers). */
  attentionOf(l: number): { window?: number; cacheRows?: number } {
    const window = this.windows[l];
    return window === null || window === undefined ? {} : { window, cacheRows: this.keys[l]!.rows };
  }

  /** Before a step of `m` tokens: windowed layers hold window - 1 + m rows (at most the capacity). */
  reserve(m: number): void {
    this.windows.forEach((w, l) => {
      if (w !== null && this.keys[l]!.rows < Math.min(this.capacity, w - 1 + m)) this.resize(l, Math.min(this.capacity, w - 1 + m));
    });
  }

  /** After a committed step: rings grown for it shrink back to the window. */
  settle(): void {
    this.windows.forEach((w, l) => {
      if (w !== null && this.keys[l]!.rows > Math.min(this.capacity, w)) this.resize(l, Math.min(this.capacity, w));
    });
  }

  /**
   * Writes `m` rows of `src` (columns [srcCol, srcCol + cols)) as positions start.. of layer `l`'s
   * keys (or values), at column `dstCol`; a ring's rows wrap.
   */
  put(which: 'keys' | 'values', l: number, src: Act, srcCol: number, start: number, m: number, cols: number, dstCol = 0): void {
    const dst = this[which][l]!;
    for (let done = 0; done < m;) {
      const row = (start + done) % dst.rows;
      const run = Math.min(m - done, dst.rows - row);
      this.backend.copy(src, done, srcCol, dst, row, dstCol, run, cols);
      done += run;
    }
  }

  free(): void {
    for (const a of [...this.keys, ...this.values]) this.backend.freeAct(a);
    this.keys.length = 0;
    this.values.length = 0;
  }

  /** A ring of `rows` rows for layer `l`, holding the last window - 1 committed positions of the old one. */
  private resize(l: number, rows: number): void {
    const keep = Math.min(this.length, this.windows[l]! - 1);
    const tables = this.latent ? [this.keys] : [this.keys, this.values];
    for (const table of tables) {
      const old = table[l]!;
      const next = this.backend.act(rows, old.cols, false);
      for (let pos = this.length - keep; pos < this.length;) {
        const from = pos % old.rows;
        const to = pos % rows;
        const run = Math.min(this.length - pos, old.rows - from, rows - to);
        this.backend.copy(old, from, 0, next, to, 0, run, old.cols);
        pos += run;
      }
      this.backend.freeAct(old);
      table[l] = next;
    }
  }
}

function rowBytes(cfg: ModelConfig): number {
  return (cfg.mla ? cfg.mla.kvLoraRank + cfg.mla.qkRopeHeadDim : 2 * cfg.numKvHeads * cfg.headDim) * 4;
}
