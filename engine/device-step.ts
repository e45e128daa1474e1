/**
 * A decode step that stays on the device: when one token runs and every routed expert is resident
 * in slabs, each MoE layer routes on the GPU (Backend.route), runs its experts from that routing
 * (Backend.routedExperts), and records its routing and the finiteness checks into one small
 * record activation; the greedy token is taken on the device too. The step then reads back once:
 * the record (token, flags), every layer's routing, and the logits only when the caller samples.
 */
import { ROUTED_EXPERT_DTYPES, type Act, type Backend, type ExpertSlabs } from '../kernels/index.ts';
import type { ModelConfig, RouterKind } from '../manifests/index.ts';
import type { Routing } from '../router/index.ts';
import type { ExpertProvider } from './experts.ts';
import type { LayerWeights } from './weights.ts';

/** Routers `Backend.route` computes (gpt-oss's topk_softmax takes the CPU-routed path). */
const ROUTED_ON_DEVICE: readonly RouterKind[] = ['softmax_topk', 'sigmoid_group_limited'];
/** Record columns before the per-layer router flags: token, final hidden state, logits. */
const FLAGS = 3;

/**
 * Thrown by `finish` when the step produced a non-finite value. The device step checks only each
 * router's logits, the final hidden state and the logits (a NaN or Inf in the residual stream stays there, and
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
  /** [1, FLAGS + layers]: token, the final hidden state's flag, the logits' flag, per-layer router-logit flags. */
  private readonly record: Act;
  /** Per layer, its routing ([1, 2k], null for dense layers): read back with the record. */
  private readonly routings: (Act | null)[];
  private readonly k: number;

  private constructor(backend: Backend, cfg: ModelConfig, slabs: (ExpertSlabs | null)[], greedy: boolean, record: Act) {
    this.backend = backend;
    this.cfg = cfg;
    this.slabs = slabs;
    this.greedy = greedy;
    this.record = record;
    this.routings = slabs.map(() => null);
    this.k = cfg.moe.topK;
  }

  /**
   * A device step for this pass, or null when one is not possible: several tokens, a paging
   * provider, an expert format it cannot pick, or an MoE block `moe` does not compute exactly as
   * the CPU-routed path does (gpt-oss's topk_softmax router with its bias, expert biases, clamped
   * SwiGLU). Attention is the caller's and is the same on both paths (windows, rings, sinks, biases).
   */
  static plan(backend: Backend, cfg: ModelConfig, layers: LayerWeights[], experts: ExpertProvider, rows: number, greedy: boolean, act: (rows: number, cols: number) => Act): DeviceStep | null {
    if (rows !== 1) return null;
    if (!ROUTED_ON_DEVICE.includes(cfg.moe.router) || cfg.moe.expertBias || cfg.moe.clampedSwiglu) return null;
    const slabs = layers.map((lw, l) => (lw.moe ? experts.slabs(l) : null));
    if (layers.some((lw, l) => lw.moe && !slabs[l])) return null;
    const formats = slabs.flatMap((s) => (s ? [s.gate[0]!.dtype, s.up[0]!.dtype, s.down[0]!.dtype] : []));
    if (!formats.every((d) => ROUTED_EXPERT_DTYPES.includes(d))) return null;
    const L = cfg.numLayers;
    return new DeviceStep(backend, cfg, slabs, greedy, act(1, FLAGS + L));
  }

  /** The layer's routed experts from its router, on the device, written over `out` (no zero fill needed); the shared expert is the caller's. */
  moe(lw: LayerWeights, l: number, x: Act, out: Act, act: (rows: number, cols: number) => Act): void {
    const { backend, cfg, k } = this;
    const moe = lw.moe!;
    const logits = act(1, cfg.moe.numExperts);
    backend.matmul(x, moe.router, logits);
    backend.finiteTo(logits, this.record, FLAGS + l);
    const routing = act(1, 2 * k);
    backend.route(logits, cfg.moe, moe.biasDevice, routing);
    backend.routedExperts(x, routing, this.slabs[l]!, out, false);
    this.routings[l] = routing;
  }

  /**
   * Checks the final hidden state `h`, takes the token (greedy) or reads the logits, and reads the
   * record; throws DeviceStepNonFinite when a check failed.
   */
  async finish(h: Act, logits: Act): Promise<DeviceStepResult> {
    const { backend, cfg, k } = this;
    backend.finiteTo(h, this.record, 1);
    // a bad LM head or final norm gives NaN logits from a finite hidden state; argmax would pick a token anyway
    backend.finiteTo(logits, this.record, 2);
    if (this.greedy) backend.argmaxTo(logits, this.record, 0);
    const routings = this.routings.filter((r): r is Act => r !== null);
    const read = await backend.readMany([this.record, ...routings, ...(this.greedy ? [] : [logits])]);
    const rec = read[0]!;
    const host = this.greedy ? new Float32Array(0) : read[read.length - 1]!;
    // dense layers have no router: their flag columns were never written
    const routersOk = this.slabs.every((s, l) => !s || rec[FLAGS + l] === 1);
    if (rec[1] !== 1 || rec[2] !== 1 || !routersOk) throw new DeviceStepNonFinite('a decode step on the device produced a non-finite value');
    let next = 1;
    const routing = this.routings.map((r): Routing | null => {
      if (!r) return null;
      const host = read[next++]!;
      return {
        tokens: 1, k, numExperts: cfg.moe.numExperts,
        experts: Int32Array.from(host.subarray(0, k)),
        weights: host.slice(k, 2 * k),
        groups: null, topkGroup: 0, groupSize: 0,
      };
    });
    return { token: this.greedy ? rec[0]! : undefined, logits: host, routing };
  }

}
