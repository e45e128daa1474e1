/**
 * One forward pass over a run of new tokens (the whole prompt at prefill, one token at decode),
 * appending to the KV cache. Attention and the expert matrices run on the backend; routing runs
 * on the CPU from the router logits read back per layer, so the engine knows which experts each
 * token needs before it asks for them.
 */
import type { Act, Backend } from '../kernels/index.ts';
import { ropeOf, type ModelConfig, type Rope, type RopeFrequencies } from '../manifests/index.ts';
import { dispatchByExpert, route, type Routing } from '../router/index.ts';
import { NonFiniteError } from './errors.ts';
import type { ExpertProvider } from './experts.ts';
import type { KvCache } from './kv-cache.ts';
import type { DenseWeights, LatentAttention, LayerWeights, MlpWeights, StandardAttention } from './weights.ts';

export interface ForwardResult {
  /** [rows, vocab]: every position's logits with allLogits, else the last position's. */
  logits: Float32Array;
  rows: number;
  /** Per layer, the routing used (null for dense layers). */
  routing: (Routing | null)[];
  /** Milliseconds spent waiting for the provider to make experts resident. */
  expertWaitMs: number;
}

/** Observes each MoE layer as it routes: the prefetcher's view of the pass. */
export interface LayerObserver {
  /** `hidden` reads the residual stream entering the layer's MoE block ([rows, hidden]). */
  routed(layer: number, routing: Routing, hidden: () => Promise<Float32Array>): void | Promise<void>;
}

/** Activations of one pass, freed together. */
class Scratch {
  private readonly acts: Act[] = [];
  private readonly backend: Backend;
  constructor(backend: Backend) {
    this.backend = backend;
  }
  /** Zeroed only when asked: most outputs are written whole by the op that produces them. */
  act(rows: number, cols: number, zeroed = false): Act {
    const a = this.backend.act(rows, cols, zeroed);
    this.acts.push(a);
    return a;
  }
  free(): void {
    for (const a of this.acts) this.backend.freeAct(a);
    this.acts.length = 0;
  }
}

export class Transformer {
  readonly cfg: ModelConfig;
  private readonly backend: Backend;
  private readonly weights: DenseWeights;
  private readonly experts: ExpertProvider;
  /** Frequencies computed once here (per pass only for dynamic NTK); refuses a rope type it cannot compute. */
  private readonly rope: Rope;
  private expertWaitMs = 0;

  constructor(backend: Backend, cfg: ModelConfig, weights: DenseWeights, experts: ExpertProvider, rope: Rope = ropeOf(cfg)) {
    this.backend = backend;
    this.cfg = cfg;
    this.rope = rope;
    this.weights = weights;
    this.experts = experts;
  }

  /** Longest context this model runs (max_position_embeddings; unbounded with dynamic NTK RoPE). */
  get maxContext(): number {
    return this.rope.maxContext;
  }

  async forward(ids: readonly number[], cache: KvCache, allLogits: boolean, observer?: LayerObserver): Promise<ForwardResult> {
    const { backend, cfg, weights } = this;
    const m = ids.length;
    const start = cache.length;
    if (m === 0) throw new RangeError('forward needs at least one token');
    if (start + m > cache.capacity) throw new RangeError(`KV cache holds ${cache.capacity} positions; ${start} used, ${m} more asked`);
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= cfg.vocabSize) throw new RangeError(`token id ${id} is outside the vocabulary (0..${cfg.vocabSize - 1})`);
    }
    const scratch = new Scratch(backend);
    this.expertWaitMs = 0;
    cache.reserve(m);
    const freq = this.rope.at(start + m);
    // finiteness flags are read without stalling the queue; each is checked before the step commits
    const guards: Promise<void>[] = [];
    // firstRow: the token position of row 0 of `a` (the last position when only it is kept)
    const guard = (layer: number, a: Act, where: string, firstRow = start) => {
      const checked = backend.finiteRows(a).then((ok) => {
        const row = ok.indexOf(false);
        if (row >= 0) throw new NonFiniteError(layer, firstRow + row, where);
      });
      // observed later, in layer order; this keeps an early rejection from counting as unhandled
      checked.catch(() => {});
      guards.push(checked);
    };
    const routing: (Routing | null)[] = [];
    const releases = new Releases();
    try {
      const h = scratch.act(m, cfg.hiddenSize);
      backend.embed(Uint32Array.from(ids), weights.embed, h);
      for (let l = 0; l < cfg.numLayers; l++) {
        const lw = weights.layers[l]!;
        const x = scratch.act(m, cfg.hiddenSize);
        backend.rmsnorm(h, lw.attnNorm, x, cfg.rmsNormEps);
        const attnOut = lw.attention.kind === 'standard'
          ? this.standardAttention(lw.attention, x, l, cache, start, freq, scratch)
          : this.latentAttention(lw.attention, x, l, cache, start, freq, scratch);
        backend.add(h, attnOut, h);
        guard(l, h, 'after attention');
        const xn = scratch.act(m, cfg.hiddenSize);
        backend.rmsnorm(h, lw.ffnNorm, xn, cfg.rmsNormEps);
        // the MoE block accumulates its experts' outputs into this
        const ffn = scratch.act(m, cfg.hiddenSize, true);
        if (lw.moe) {
          routing.push(await this.moe(lw, xn, ffn, l, start, scratch, releases, async (r) => {
            await Promise.all(guards);
            await observer?.routed(l, r, () => backend.read(h));
          }));
        } else {
          this.mlp(lw.mlp!, xn, ffn, cfg.intermediateSize, scratch);
          routing.push(null);
        }
        backend.add(h, ffn, h);
        guard(l, h, 'after the feed-forward block');
      }
      const last = allLogits ? h : scratch.act(1, cfg.hiddenSize);
      if (!allLogits) backend.copy(h, m - 1, 0, last, 0, 0, 1, cfg.hiddenSize);
      const normed = scratch.act(last.rows, cfg.hiddenSize);
      backend.rmsnorm(last, weights.finalNorm, normed, cfg.rmsNormEps);
      const lastStart = allLogits ? start : start + m - 1;
      guard(cfg.numLayers, normed, 'after the final norm', lastStart);
      const logits = scratch.act(last.rows, cfg.vocabSize);
      backend.matmul(normed, weights.lmHead, logits);
      const host = await backend.read(logits);
      await Promise.all(guards);
      // a bad LM head gives NaN logits from a finite hidden state; sampling would pick a token anyway
      const bad = host.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) throw new NonFiniteError(cfg.numLayers, lastStart + Math.floor(bad / cfg.vocabSize), 'in the logits');
      cache.length = start + m;
      cache.settle();
      return { logits: host, rows: last.rows, routing, expertWaitMs: this.expertWaitMs };
    } finally {
      await Promise.allSettled(guards);
      releases.run();
      scratch.free();
    }
  }

  private standardAttention(a: StandardAttention, x: Act, l: number, cache: KvCache, start: number, freq: RopeFrequencies, s: Scratch): Act {
    const { backend, cfg } = this;
    const m = x.rows;
    const hd = cfg.headDim;
    const q = s.act(m, cfg.numHeads * hd);
    const k = s.act(m, cfg.numKvHeads * hd);
    const v = s.act(m, cfg.numKvHeads * hd);
    backend.matmul(x, a.q, q);
    backend.matmul(x, a.k, k);
    backend.matmul(x, a.v, v);
    if (a.bias) {
      backend.addBias(q, a.bias.q, q);
      backend.addBias(k, a.bias.k, k);
      backend.addBias(v, a.bias.v, v);
    }
    let qr = q;
    let kr = k;
    if (a.qNorm && a.kNorm) {
      qr = s.act(m, q.cols);
      kr = s.act(m, k.cols);
      backend.rmsnorm(q, a.qNorm, qr, cfg.rmsNormEps);
      backend.rmsnorm(k, a.kNorm, kr, cfg.rmsNormEps);
    }
    const rope = { headStride: hd, ropeOffset: 0, ropeDim: hd, startPos: start, theta: cfg.ropeTheta, interleaved: cfg.ropeInterleaved, ...freq };
    backend.rope(qr, { ...rope, heads: cfg.numHeads });
    backend.rope(kr, { ...rope, heads: cfg.numKvHeads });
    cache.put('keys', l, kr, 0, start, m, kr.cols);
    cache.put('values', l, v, 0, start, m, v.cols);
    const ctx = s.act(m, cfg.numHeads * hd);
    backend.attention(qr, cache.keys[l]!, cache.values[l]!, ctx, {
      heads: cfg.numHeads, kvHeads: cfg.numKvHeads, dk: hd, dv: hd, startPos: start, scale: 1 / Math.sqrt(hd), ...cache.attentionOf(l),
      ...(a.sinks ? { sinks: a.sinks } : {}),
    });
    const out = s.act(m, cfg.hiddenSize);
    backend.matmul(ctx, a.o, out);
    if (a.bias) backend.addBias(out, a.bias.o, out);
    return out;
  }

  /**
   * Absorbed MLA: q_nope is mapped into the latent space per head (W_kᵀ), so every head attends
   * over the cached latent directly; the attention-weighted latent is mapped up to values (W_v).
   */
  private latentAttention(a: LatentAttention, x: Act, l: number, cache: KvCache, start: number, freq: RopeFrequencies, s: Scratch): Act {
    const { backend, cfg } = this;
    const mla = cfg.mla!;
    const m = x.rows;
    const heads = cfg.numHeads;
    const nope = mla.qkNopeHeadDim;
    const ropeDim = mla.qkRopeHeadDim;
    const rank = mla.kvLoraRank;
    const qkDim = nope + ropeDim;
    const latentWidth = rank + ropeDim;

    let qIn = x;
    if (a.qA && a.qANorm) {
      const qa = s.act(m, a.qA.rows);
      backend.matmul(x, a.qA, qa);
      qIn = s.act(m, a.qA.rows);
      backend.rmsnorm(qa, a.qANorm, qIn, cfg.rmsNormEps);
    }
    const q = s.act(m, heads * qkDim);
    backend.matmul(qIn, a.q, q);
    const rope = { startPos: start, theta: cfg.ropeTheta, interleaved: cfg.ropeInterleaved, ropeOffset: 0, ropeDim, ...freq };
    backend.rope(q, { ...rope, heads, headStride: qkDim, ropeOffset: nope });

    // gather each head's no-RoPE part contiguously, by viewing rows of heads as rows of their own
    const qNope = s.act(m, heads * nope);
    backend.copy(backend.view(q, m * heads, qkDim), 0, 0, backend.view(qNope, m * heads, nope), 0, 0, m * heads, nope);
    const qLatent = s.act(m, heads * rank);
    backend.matmulHeads(qNope, a.keyAbsorb, qLatent, heads);
    const qFull = s.act(m, heads * latentWidth);
    const qFullRows = backend.view(qFull, m * heads, latentWidth);
    backend.copy(backend.view(qLatent, m * heads, rank), 0, 0, qFullRows, 0, 0, m * heads, rank);
    backend.copy(backend.view(q, m * heads, qkDim), 0, nope, qFullRows, 0, rank, m * heads, ropeDim);

    const kva = s.act(m, latentWidth);
    backend.matmul(x, a.kvA, kva);
    backend.rope(kva, { ...rope, heads: 1, headStride: latentWidth, ropeOffset: rank });
    const latent = s.act(m, rank);
    backend.copy(kva, 0, 0, latent, 0, 0, m, rank);
    const latentNormed = s.act(m, rank);
    backend.rmsnorm(latent, a.kvANorm, latentNormed, cfg.rmsNormEps);
    cache.put('keys', l, latentNormed, 0, start, m, rank);
    cache.put('keys', l, kva, rank, start, m, ropeDim, rank);

    const ctxLatent = s.act(m, heads * rank);
    const c = cache.keys[l]!;
    backend.attention(qFull, c, c, ctxLatent, {
      heads, kvHeads: 1, dk: latentWidth, dv: rank, startPos: start, scale: mla.softmaxScale, vColOffset: 0, ...cache.attentionOf(l),
    });
    const ctx = s.act(m, heads * mla.vHeadDim);
    backend.matmulHeads(ctxLatent, a.valueUp, ctx, heads);
    const out = s.act(m, cfg.hiddenSize);
    backend.matmul(ctx, a.o, out);
    return out;
  }

  /** A gated MLP: silu(gate) · up, or gpt-oss's clamped SwiGLU for `clamped`; biases where the weights have them. */
  private mlp(w: MlpWeights, x: Act, out: Act, intermediate: number, s: Scratch, accumulate = false, clamped?: { alpha: number; limit: number }): void {
    const { backend } = this;
    const g = s.act(x.rows, intermediate);
    const u = s.act(x.rows, intermediate);
    const a = s.act(x.rows, intermediate);
    backend.matmul(x, w.gate, g);
    backend.matmul(x, w.up, u);
    if (w.bias) {
      backend.addBias(g, w.bias.gate, g);
      backend.addBias(u, w.bias.up, u);
    }
    if (clamped) backend.swigluClamped(g, u, a, clamped.alpha, clamped.limit);
    else backend.swiglu(g, u, a);
    if (!w.bias) {
      backend.matmul(a, w.down, out, accumulate);
      return;
    }
    // the bias belongs to this MLP's output alone, not to what `out` already holds
    const y = accumulate ? s.act(x.rows, out.cols) : out;
    backend.matmul(a, w.down, y);
    backend.addBias(y, w.bias.down, y);
    if (accumulate) backend.add(out, y, out);
  }

  /**
   * Router logits are read back and routed on the CPU; the chosen experts are then acquired from
   * the provider — in chunks of what it can hold at once — and run over the tokens that chose them.
   */
  private async moe(lw: LayerWeights, x: Act, out: Act, l: number, start: number, s: Scratch, releases: Releases, routed: (r: Routing) => Promise<void>): Promise<Routing> {
    const { backend, cfg } = this;
    const moe = lw.moe!;
    const m = x.rows;
    const numExperts = cfg.moe.numExperts;
    const logitsAct = s.act(m, numExperts);
    backend.matmul(x, moe.router, logitsAct);
    const logits = await backend.read(logitsAct);
    // the read submitted everything queued so far, so experts of earlier layers may go now
    releases.run();
    for (let i = 0; i < logits.length; i++) {
      if (!Number.isFinite(logits[i]!)) throw new NonFiniteError(l, start + Math.floor(i / numExperts), 'router logits');
    }
    const r = route(logits, cfg.moe, moe.bias);
    await routed(r);
    const d = dispatchByExpert(r);
    const inter = cfg.moe.expertIntermediateSize;
    const chunk = Math.max(1, this.experts.capacity());
    for (let c = 0; c < d.experts.length; c += chunk) {
      if (c > 0) {
        // the provider cannot hold the whole layer: let the previous chunk finish before it goes
        await backend.sync();
        releases.run();
      }
      const ids = d.experts.subarray(c, c + chunk);
      const t0 = performance.now();
      const weights = await this.experts.acquire(l, ids);
      this.expertWaitMs += performance.now() - t0;
      releases.add(() => this.experts.release(l, ids));
      for (let j = 0; j < ids.length; j++) {
        const i = c + j;
        const from = d.offsets[i]!;
        const n = d.offsets[i + 1]! - from;
        const rows = Uint32Array.from(d.rows.subarray(from, from + n));
        let xe = x;
        if (n !== m) {
          xe = s.act(n, cfg.hiddenSize);
          backend.gather(x, rows, xe);
        }
        const y = s.act(n, cfg.hiddenSize);
        this.mlp(weights[j]!, xe, y, inter, s, false, cfg.moe.clampedSwiglu);
        backend.scatterAdd(y, rows, d.scales.slice(from, from + n), out);
      }
    }
    if (moe.shared) this.mlp(moe.shared, x, out, cfg.moe.sharedIntermediateSize, s, true);
    return r;
  }
}

/**
 * Experts handed back to their provider once the kernels that read them have been submitted
 * (after the next read-back or sync), so a provider may evict them without pulling weights out
 * from under queued work.
 */
class Releases {
  private pending: Array<() => void> = [];
  add(release: () => void): void {
    this.pending.push(release);
  }
  run(): void {
    const now = this.pending;
    this.pending = [];
    for (const r of now) r();
  }
}
