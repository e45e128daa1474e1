/**
 * Routing of the router logits that transformers recorded for the hf-moe fixtures
 * (golden.json `prefill_gate_outputs`: raw router logits per position for all three architectures;
 * DeepSeek-V3's gate module returns logits in transformers 5 and routing happens in the MoE block).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { route, routeSoftmaxTopk, groupsUsed, type Routing } from '../../../router/index.ts';
import type { MoeConfig } from '../../../manifests/index.ts';

const FIXTURES = new URL('../../../../shared/fixtures/hf-moe/', import.meta.url);

interface Golden {
  prefill_gate_outputs: Record<string, number[][]>;
}

function load(name: string): { config: Record<string, unknown>; golden: Golden; file: Uint8Array } {
  const dir = new URL(`${name}/`, FIXTURES);
  return {
    config: JSON.parse(readFileSync(new URL('config.json', dir), 'utf8')),
    golden: JSON.parse(readFileSync(new URL('golden.json', dir), 'utf8')),
    file: readFileSync(new URL('model.safetensors', dir)),
  };
}

/** One F32 tensor of a safetensors file (8-byte LE header length, JSON header, data). */
function f32Tensor(file: Uint8Array, name: string): Float32Array {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + headerLen)));
  const entry = header[name] as { dtype: string; data_offsets: [number, number] };
  expect(entry.dtype).toBe('F32');
  // copy: a Node Buffer's slice is a view into a shared pool
  const bytes = new Uint8Array(file.subarray(8 + headerLen + entry.data_offsets[0], 8 + headerLen + entry.data_offsets[1]));
  return new Float32Array(bytes.buffer);
}

function moeOf(c: Record<string, unknown>): MoeConfig {
  const n = (k: string) => c[k] as number;
  const ds = c.model_type === 'deepseek_v3';
  return {
    router: ds ? 'sigmoid_group_limited' : 'softmax_topk',
    numExperts: ds ? n('n_routed_experts') : n('num_local_experts'),
    topK: n('num_experts_per_tok'),
    expertIntermediateSize: n('moe_intermediate_size') ?? n('intermediate_size'),
    normTopkProb: c.model_type === 'mixtral' ? true : (c.norm_topk_prob as boolean),
    denseLayers: [],
    numSharedExperts: ds ? n('n_shared_experts') : 0,
    sharedIntermediateSize: 0,
    nGroup: ds ? n('n_group') : 1,
    topkGroup: ds ? n('topk_group') : 1,
    routedScalingFactor: ds ? n('routed_scaling_factor') : 1,
  };
}

function checkRows(r: Routing, sum: number): void {
  for (let t = 0; t < r.tokens; t++) {
    const ex = [...r.experts.subarray(t * r.k, (t + 1) * r.k)];
    const w = [...r.weights.subarray(t * r.k, (t + 1) * r.k)];
    expect(new Set(ex).size).toBe(r.k);
    for (const x of w) expect(x).toBeGreaterThan(0);
    expect(Math.abs(w.reduce((a, b) => a + b, 0) - sum)).toBeLessThan(1e-5 * sum);
  }
}

describe('routing the hf-moe golden router logits', () => {
  for (const name of ['mixtral-tiny', 'qwen3moe-tiny']) {
    it(`${name}: softmax top-k gives k distinct experts, normalised weights equal to a softmax over the chosen logits`, () => {
      const { config, golden } = load(name);
      const cfg = moeOf(config);
      const layers = Object.entries(golden.prefill_gate_outputs);
      expect(layers.length).toBe(config.num_hidden_layers);
      const used = new Set<number>();
      for (const [, rows] of layers) {
        const logits = Float32Array.from(rows.flat());
        const r = route(logits, cfg);
        expect(r.tokens).toBe(12);
        checkRows(r, 1);
        for (let t = 0; t < r.tokens; t++) {
          const chosen = [...r.experts.subarray(t * r.k, (t + 1) * r.k)].map((e) => rows[t]![e]!);
          const m = Math.max(...chosen);
          const z = chosen.reduce((a, x) => a + Math.exp(x - m), 0);
          chosen.forEach((x, j) => expect(Math.abs(r.weights[t * r.k + j]! - Math.exp(x - m) / z)).toBeLessThan(1e-6));
          const sorted = [...rows[t]!].sort((a, b) => b - a);
          expect(rows[t]![r.experts[t * r.k + r.k - 1]!]).toBe(sorted[r.k - 1]);
          expect(sorted[r.k - 1]).toBeGreaterThan(sorted[r.k]!);
        }
        r.experts.forEach((e) => used.add(e));
      }
      expect(used.size).toBeGreaterThan(cfg.numExperts / 2);
    });
  }

  it('deepseekv3-tiny: gate outputs are logits; group-limited routing keeps topk_group groups and scales weights', () => {
    const { config, golden, file } = load('deepseekv3-tiny');
    const cfg = moeOf(config);
    const layers = Object.entries(golden.prefill_gate_outputs);
    expect(layers.map(([k]) => k)).toEqual(['model.layers.1.mlp.gate', 'model.layers.2.mlp.gate']);
    let outsideKept = 0;
    for (const [mod, rows] of layers) {
      const flat = rows.flat();
      // sigmoid scores would lie in (0, 1): these are raw logits
      expect(flat.some((x) => x < 0) && flat.some((x) => x > 1)).toBe(true);
      const bias = f32Tensor(file, `${mod}.e_score_correction_bias`);
      const r = route(Float32Array.from(flat), cfg, bias);
      checkRows(r, cfg.routedScalingFactor);
      expect(groupsUsed(r).length).toBeGreaterThanOrEqual(cfg.topkGroup);
      for (let t = 0; t < r.tokens; t++) {
        const kept = new Set(r.groups!.subarray(t * r.topkGroup, (t + 1) * r.topkGroup));
        expect(kept.size).toBe(cfg.topkGroup);
        for (const e of r.experts.subarray(t * r.k, (t + 1) * r.k)) if (!kept.has(Math.floor(e / r.groupSize))) outsideKept++;
      }
      // without the bias, selection differs: the fixture's random bias really steers routing
      const plain = route(Float32Array.from(flat), cfg, null);
      expect([...plain.experts]).not.toEqual([...r.experts]);
    }
    // transformers masks dropped groups with 0.0; with this fixture's bias every choice stays in a kept group
    expect(outsideKept).toBe(0);
  });

  it('Mixtral routing equals softmax over the top-k logits (the formulation the engine issue states)', () => {
    const { golden } = load('mixtral-tiny');
    const rows = Object.values(golden.prefill_gate_outputs)[0]!;
    const r = routeSoftmaxTopk(Float32Array.from(rows.flat()), { numExperts: 8, topK: 2, normTopkProb: true });
    for (let t = 0; t < r.tokens; t++) {
      const [a, b] = [rows[t]![r.experts[2 * t]!]!, rows[t]![r.experts[2 * t + 1]!]!];
      expect(Math.abs(r.weights[2 * t]! - 1 / (1 + Math.exp(b - a)))).toBeLessThan(1e-6);
    }
  });
});
