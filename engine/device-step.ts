/**
 * A decode step that stays on the device: when one token runs and every routed expert is resident
 * in slabs, each MoE layer routes on the GPU (Backend.route), runs its experts from that routing
 * (Backend.routedExperts), and records its routing and the finiteness checks into one small
 * record activation; the greedy token is taken on the device too. The step then reads back once:
 * the record (token, flags, routing), plus the logits only when the caller samples from them.
 */
import type { Act, Backend, ExpertSlabs } from '../kernels/index.ts';
import type { ModelConfig } from '../manifests/index.ts';
import type { Routing } from '../router/index.ts';
import type { ExpertProvider } from './experts.ts';
import type { LayerWeights } from './weights.ts';

/**
 * Thrown by `finish` when the step produced a non-finite value. The device step checks only each
 * router's logits and the final hidden state (a NaN or Inf in the residual stream stays there, and
 * non-finite router logits make non-finite weights), so the caller re-runs the step layer by layer
 * to name where it first went wrong.
 */
export class DeviceStepNonFinite extends Error {
  override name = 'DeviceStepNonFinite';
}

export interface DeviceStepResult {
  /** The greedy token when the step was asked for it, else undefined. */
  token: number | undefined;
  /** The last position's logits when the step was not greedy; empty otherwise. */
  logits: Float32Array;
  /** Per layer, the routing the device chose (null for dense layers). */
  routing: (Routing | null)[];
}

export class DeviceStep {
  private readonly backend: Backend;
  private readonly cfg: ModelConfig;
  private readonly greedy: boolean;
  private readonly slabs: (ExpertSlabs | null)[];
  /** [1, 2 + layers + 2k·layers]: token, final hidden state's flag, per-layer router-logit flags, per-layer routing. */
  private readonly record: Act;
  private readonly k: number;

  private constructor(backend: Backend, cfg: ModelConfig, slabs: (ExpertSlabs | null)[], greedy: boolean, record: Act) {
    this.backend = backend;
    this.cfg = cfg;
    this.slabs = slabs;
    this.greedy = greedy;
    this.record = record;
    this.k = cfg.moe.topK;
  }

  /** A device step for this pass, or null when one is not possible (several tokens, a paging provider). */
  static plan(backend: Backend, cfg: ModelConfig, layers: LayerWeights[], experts: ExpertProvider, rows: number, greedy: boolean, act: (rows: number, cols: number) => Act): DeviceStep | null {
    if (rows !== 1) return null;
    const slabs = layers.map((lw, l) => (lw.moe ? experts.slabs(l) : null));
    if (layers.some((lw, l) => lw.moe && !slabs[l])) return null;
    const L = cfg.numLayers;
    return new DeviceStep(backend, cfg, slabs, greedy, act(1, 2 + L + 2 * cfg.moe.topK * L));
  }

  /** The layer's routed experts from its router, on the device; the shared expert is the caller's. */
  moe(lw: LayerWeights, l: number, x: Act, out: Act, act: (rows: number, cols: number) => Act): void {
    const { backend, cfg, k } = this;
    const moe = lw.moe!;
    const logits = act(1, cfg.moe.numExperts);
    backend.matmul(x, moe.router, logits);
    backend.finiteTo(logits, this.record, 2 + l);
    const routing = act(1, 2 * k);
    backend.route(logits, cfg.moe, moe.biasDevice, routing);
    backend.routedExperts(x, routing, this.slabs[l]!, out);
    backend.copy(routing, 0, 0, this.record, 0, this.routingCol(l), 1, 2 * k);
  }

  /**
   * Checks the final hidden state `h`, takes the token (greedy) or reads the logits, and reads the
   * record; throws DeviceStepNonFinite when a check failed.
   */
  async finish(h: Act, logits: Act): Promise<DeviceStepResult> {
    const { backend, cfg, k } = this;
    backend.finiteTo(h, this.record, 1);
    if (this.greedy) backend.argmaxTo(logits, this.record, 0);
    const host = this.greedy ? new Float32Array(0) : await backend.read(logits);
    const rec = await backend.read(this.record);
    // dense layers have no router: their flag columns were never written
    const routersOk = this.slabs.every((s, l) => !s || rec[2 + l] === 1);
    if (rec[1] !== 1 || !routersOk) throw new DeviceStepNonFinite('a decode step on the device produced a non-finite value');
    const routing = this.slabs.map((s, l): Routing | null => {
      if (!s) return null;
      const at = this.routingCol(l);
      return {
        tokens: 1, k, numExperts: cfg.moe.numExperts,
        experts: Int32Array.from(rec.subarray(at, at + k)),
        weights: rec.slice(at + k, at + 2 * k),
        groups: null, topkGroup: 0, groupSize: 0,
      };
    });
    return { token: this.greedy ? rec[0]! : undefined, logits: host, routing };
  }

  private routingCol(l: number): number {
    return 2 + this.cfg.numLayers + 2 * this.k * l;
  }
}
