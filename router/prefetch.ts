/**
 * Expert prefetch: while layer l runs, guess the experts of the next MoE layers and ask storage
 * for them early. The guess applies each coming layer's router to the current hidden state (the
 * residual stream changes little from one layer to the next, so the early gate is usually right)
 * and blends in statistics of past traffic: each expert's popularity and, for the next layer, how
 * often it followed the experts layer l actually used.
 */
import type { MoeConfig } from '../manifests/index.ts';
import { expertsUsed } from './dispatch.ts';
import { RouterError, route, type Routing } from './routing.ts';

/** Where prefetches go: the shard store, or anything of the same shape. */
export interface PrefetchTarget {
  /**
   * `hint.layersAhead` says how many MoE layers ahead the shards are needed (1: the next one): a
   * store can bring near ones to the device and stage farther ones in a slower tier.
   */
  prefetch(hashes: string[], priority: number, hint?: { layersAhead: number }): void;
  cancel?(hashes: string[]): void;
}

export interface LayerGate {
  /** Router weight [numExperts, hiddenSize], f32 row-major. */
  weight: Float32Array;
  /** e_score_correction_bias (DeepSeek-V3), if the layer has one. */
  bias?: Float32Array | null;
  /** The layer's post-attention RMSNorm weight: the router sees normalised input. */
  norm?: Float32Array | null;
}

export interface PrefetcherOptions {
  moe: MoeConfig;
  hiddenSize: number;
  numLayers: number;
  rmsNormEps?: number;
  /** The router of a MoE layer; null for dense layers. */
  gate(layer: number): LayerGate | null;
  /** Shard hashes holding one routed expert. */
  hashesOf(layer: number, expert: number): string[];
  target: PrefetchTarget;
  /** How many MoE layers ahead to predict (default 1). */
  depth?: number;
  /** Experts predicted per token and layer (default topK). */
  width?: number;
  /** Weight of past-traffic statistics against the early gate, in [0, 1] (default 0.2). */
  statsWeight?: number;
  /** Aging of the statistics per observed layer visit (default 0.99). */
  decay?: number;
  /** Hidden-state rows used for a prediction: the last ones of a long prefill (default 256). */
  maxRows?: number;
}

export interface AccuracyStats {
  /** Layers scored. */
  layers: number;
  predicted: number;
  actual: number;
  correct: number;
  /** correct / predicted and correct / actual over all scored layers (0 when nothing was scored). */
  precision: number;
  recall: number;
}

export interface PrefetcherStats {
  /** Prediction of the next MoE layer (depth 1), the one the issue asks to report. */
  nextLayer: AccuracyStats;
  /** Index d-1: predictions made d MoE layers ahead. */
  byDepth: AccuracyStats[];
  /** Shard hashes handed to the target and cancelled again. */
  prefetchedShards: number;
  cancelledShards: number;
}

interface Outstanding {
  /** The latest prediction: what is being fetched now. */
  current: Set<number>;
  /** Each depth's prediction, scored separately when the layer runs. */
  byDepth: Map<number, Set<number>>;
}

function emptyAccuracy(): AccuracyStats {
  return { layers: 0, predicted: 0, actual: 0, correct: 0, precision: 0, recall: 0 };
}

export class Prefetcher {
  private readonly opts: PrefetcherOptions;
  private readonly moeLayers: number[];
  private readonly depth: number;
  private readonly width: number;
  private readonly lambda: number;
  private readonly decay: number;
  private readonly maxRows: number;
  private readonly eps: number;
  private readonly e: number;
  /** Per MoE layer: decayed use count per expert and decayed visit count. */
  private readonly popularity = new Map<number, { counts: Float64Array; visits: number }>();
  /** Per MoE layer m: [E_prev * E] decayed counts of expert j at m after expert i at the MoE layer before m. */
  private readonly transitions = new Map<number, Float64Array>();
  private readonly outstanding = new Map<number, Outstanding>();
  /** The last observed layer and its experts, for transitions and next-layer blending. */
  private lastObserved: { layer: number; experts: number[] } | null = null;
  private readonly accuracy: AccuracyStats[];
  private prefetchedShards = 0;
  private cancelledShards = 0;

  constructor(opts: PrefetcherOptions) {
    this.opts = opts;
    this.e = opts.moe.numExperts;
    this.depth = Math.max(1, Math.floor(opts.depth ?? 1));
    this.width = Math.min(this.e, Math.max(1, Math.floor(opts.width ?? opts.moe.topK)));
    this.lambda = Math.min(1, Math.max(0, opts.statsWeight ?? 0.2));
    this.decay = opts.decay ?? 0.99;
    this.maxRows = Math.max(1, opts.maxRows ?? 256);
    this.eps = opts.rmsNormEps ?? 1e-6;
    this.moeLayers = [];
    for (let l = 0; l < opts.numLayers; l++) if (opts.gate(l) !== null) this.moeLayers.push(l);
    this.accuracy = Array.from({ length: this.depth }, emptyAccuracy);
  }

  /**
   * With the hidden state [rows, hiddenSize] available after layer `layer` (-1: the embeddings),
   * predict the next `depth` MoE layers' experts and prefetch their shards, nearest layer at the
   * highest priority. A re-prediction of a layer cancels what it no longer expects.
   */
  predict(layer: number, hidden: Float32Array): Map<number, Int32Array> {
    const h = this.opts.hiddenSize;
    if (hidden.length === 0 || hidden.length % h !== 0) {
      throw new RouterError(`prefetcher: hidden state of ${hidden.length} floats is not rows × ${h}`);
    }
    const rows = hidden.length / h;
    const first = Math.max(0, rows - this.maxRows);
    const x = hidden.subarray(first * h);
    const out = new Map<number, Int32Array>();
    const coming = this.moeLayers.filter((m) => m > layer).slice(0, this.depth);
    coming.forEach((m, i) => {
      const d = i + 1;
      const chosen = this.predictLayer(m, x, rows - first, d === 1 && this.lastObserved?.layer === layer ? this.lastObserved.experts : null);
      out.set(m, chosen.experts);
      this.issue(m, d, chosen.experts, chosen.scores);
    });
    return out;
  }

  /** The experts layer `layer` used: scores the predictions made for it and learns from it. */
  observe(layer: number, experts: ArrayLike<number>): void {
    const used = [...new Set(Array.from(experts))].sort((a, b) => a - b);
    for (const e of used) {
      if (!Number.isInteger(e) || e < 0 || e >= this.e) throw new RouterError(`prefetcher: layer ${layer} reports expert ${e} of ${this.e}`);
    }
    const pending = this.outstanding.get(layer);
    if (pending) {
      for (const [depth, predicted] of pending.byDepth) {
        const a = this.accuracy[depth - 1]!;
        a.layers++;
        a.predicted += predicted.size;
        a.actual += used.length;
        a.correct += used.filter((e) => predicted.has(e)).length;
        a.precision = a.predicted === 0 ? 0 : a.correct / a.predicted;
        a.recall = a.actual === 0 ? 0 : a.correct / a.actual;
      }
      // the layer has run: fetches of experts it did not use are no longer worth finishing
      this.cancelExperts(layer, [...pending.current].filter((e) => !used.includes(e)));
      this.outstanding.delete(layer);
    }
    this.learn(layer, used);
  }

  /** The engine's per-layer observer: observe the routing, then predict from the hidden state. */
  async routed(layer: number, routing: Routing, hidden: () => Promise<Float32Array>): Promise<void> {
    this.observe(layer, expertsUsed(routing));
    if (this.moeLayers.some((m) => m > layer)) this.predict(layer, await hidden());
  }

  /** A new sequence: drop outstanding predictions (learned statistics stay). */
  reset(): void {
    for (const [layer, o] of this.outstanding) this.cancelExperts(layer, [...o.current]);
    this.outstanding.clear();
    this.lastObserved = null;
  }

  stats(): PrefetcherStats {
    return {
      nextLayer: { ...this.accuracy[0]! },
      byDepth: this.accuracy.map((a) => ({ ...a })),
      prefetchedShards: this.prefetchedShards,
      cancelledShards: this.cancelledShards,
    };
  }

  private predictLayer(m: number, x: Float32Array, rows: number, prevExperts: number[] | null): { experts: Int32Array; scores: Float64Array } {
    const gate = this.opts.gate(m)!;
    const h = this.opts.hiddenSize;
    const e = this.e;
    if (gate.weight.length !== e * h) throw new RouterError(`prefetcher: layer ${m} gate has ${gate.weight.length} floats, expected ${e} × ${h}`);
    const logits = new Float32Array(rows * e);
    const xn = new Float32Array(h);
    for (let r = 0; r < rows; r++) {
      const row = x.subarray(r * h, (r + 1) * h);
      if (gate.norm) {
        let ss = 0;
        for (let i = 0; i < h; i++) ss += row[i]! * row[i]!;
        const inv = 1 / Math.sqrt(ss / h + this.eps);
        for (let i = 0; i < h; i++) xn[i] = row[i]! * inv * gate.norm[i]!;
      } else {
        xn.set(row);
      }
      for (let j = 0; j < e; j++) {
        let acc = 0;
        const w = gate.weight.subarray(j * h, (j + 1) * h);
        for (let i = 0; i < h; i++) acc += w[i]! * xn[i]!;
        logits[r * e + j] = acc;
      }
    }
    // the router's own top-k widened to twice the prediction width gives each row a confidence
    const wide = Math.min(e, 2 * this.width);
    const r = route(logits, { ...this.opts.moe, topK: wide, normTopkProb: true, routedScalingFactor: 1 }, gate.bias ?? null);
    const stat = this.statDistribution(m, prevExperts);
    const scores = new Float64Array(e);
    const chosen = new Set<number>();
    const blended = new Float64Array(e);
    const rank = new Int32Array(e);
    const order = Array.from({ length: e }, (_, j) => j);
    for (let t = 0; t < rows; t++) {
      for (let j = 0; j < e; j++) {
        blended[j] = this.lambda * stat[j]!;
        rank[j] = wide + j;
      }
      // weights follow the router's selection order only for softmax routers: a running minimum
      // keeps the confidence monotone in that order, so with no statistics the router's choice wins
      let g = Infinity;
      for (let j = 0; j < wide; j++) {
        const x = r.experts[t * wide + j]!;
        g = Math.min(g, r.weights[t * wide + j]!);
        blended[x]! += (1 - this.lambda) * g;
        rank[x] = j;
      }
      order.sort((a, b) => blended[b]! - blended[a]! || rank[a]! - rank[b]!);
      for (let j = 0; j < this.width; j++) chosen.add(order[j]!);
      for (let j = 0; j < e; j++) scores[j] = Math.max(scores[j]!, blended[j]!);
    }
    return { experts: Int32Array.from(chosen).sort(), scores };
  }

  /** Past traffic as a distribution over the layer's experts (uniform before anything was seen). */
  private statDistribution(m: number, prevExperts: number[] | null): Float64Array {
    const e = this.e;
    const out = new Float64Array(e).fill(1 / e);
    const pop = this.popularity.get(m);
    if (!pop || pop.visits === 0) return out;
    let total = 0;
    for (let j = 0; j < e; j++) total += pop.counts[j]! + 0.01;
    for (let j = 0; j < e; j++) out[j] = (pop.counts[j]! + 0.01) / total;
    const trans = this.transitions.get(m);
    if (!prevExperts || prevExperts.length === 0 || !trans) return out;
    // P(j | i) with the popularity as a prior of weight 1, averaged over the experts i that ran
    const mixed = new Float64Array(e);
    for (const i of prevExperts) {
      let rowTotal = 0;
      for (let j = 0; j < e; j++) rowTotal += trans[i * e + j]!;
      for (let j = 0; j < e; j++) mixed[j]! += (trans[i * e + j]! + out[j]!) / (rowTotal + 1) / prevExperts.length;
    }
    return mixed;
  }

  private learn(layer: number, used: number[]): void {
    const e = this.e;
    let pop = this.popularity.get(layer);
    if (!pop) this.popularity.set(layer, (pop = { counts: new Float64Array(e), visits: 0 }));
    for (let j = 0; j < e; j++) pop.counts[j]! *= this.decay;
    pop.visits = pop.visits * this.decay + 1;
    for (const j of used) pop.counts[j]! += 1;
    const prev = this.lastObserved;
    const idx = this.moeLayers.indexOf(layer);
    if (prev && idx > 0 && this.moeLayers[idx - 1] === prev.layer) {
      let trans = this.transitions.get(layer);
      if (!trans) this.transitions.set(layer, (trans = new Float64Array(e * e)));
      for (let i = 0; i < trans.length; i++) trans[i]! *= this.decay;
      for (const i of prev.experts) for (const j of used) trans[i * e + j]! += 1 / prev.experts.length;
    }
    this.lastObserved = { layer, experts: used };
  }

  private issue(m: number, depth: number, experts: Int32Array, scores: Float64Array): void {
    const now = new Set(experts);
    let o = this.outstanding.get(m);
    if (o) {
      // the newer prediction (made nearer the layer) supersedes what the older one fetched
      this.cancelExperts(m, [...o.current].filter((x) => !now.has(x)));
      o.current = now;
    } else {
      this.outstanding.set(m, (o = { current: now, byDepth: new Map() }));
    }
    o.byDepth.set(depth, now);
    for (const x of experts) {
      const hashes = this.opts.hashesOf(m, x);
      this.prefetchedShards += hashes.length;
      this.opts.target.prefetch(hashes, 2 * (this.depth - depth) + scores[x]!, { layersAhead: depth });
    }
  }

  private cancelExperts(layer: number, experts: number[]): void {
    if (experts.length === 0 || !this.opts.target.cancel) return;
    const hashes = experts.flatMap((x) => this.opts.hashesOf(layer, x));
    this.cancelledShards += hashes.length;
    this.opts.target.cancel(hashes);
  }
}
