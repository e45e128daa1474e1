/**
 * Expert routing on the GPU, the same arithmetic as router/routing.ts (the reference): one thread
 * per token, top-k by insertion with the lower index first among equals. Output row t of `o`
 * ([tokens, 2k] f32): expert ids (as values) in columns 0..k-1, best first, weights in k..2k-1.
 *
 * - softmax_topk (Mixtral, Qwen3-MoE): selection on logits (softmax is monotonic), weights
 *   p = exp(l − max) / Σ exp(l − max), renormalised over the selected when `norm`.
 * - sigmoid_group_limited (DeepSeek-V3): s = sigmoid(l), c = s + bias; groups scored by their two
 *   largest c, the best topkGroup kept, every other c replaced by 0.0; top-k of c; w = s (divided
 *   by Σ s + 1e-20 when `norm`) × routedScalingFactor.
 *
 * A row with a non-finite logit still gets ids in 0..E-1 (never an out-of-range slot); the
 * engine's finiteness guard rejects such a step.
 */
import { LINEAR_ENTRY_ARGS, LINEAR_WGID, paramsStruct, type KernelSource } from './common.wgsl.ts';

export const ROUTE_WG = 64;

export interface RouteShape {
  kind: 'softmax_topk' | 'sigmoid_group_limited';
  numExperts: number;
  k: number;
  nGroup: number;
  topkGroup: number;
  bias: boolean;
}

/** `fn topk_<name>(base, len, k)`: insertion top-k of v[base..base+len) into sel[0..k), as router/topkInto. */
function topkFn(name: string, values: string, sel: string, selLen: number): string {
  return `fn topk_${name}(base: u32, len: u32, k: u32) {
  var n = 0u;
  for (var i = 0u; i < len; i++) {
    let x = ${values}[base + i];
    if (n == k && !(x > ${values}[base + ${sel}[k - 1u]])) { continue; }
    var j = k - 1u;
    if (n < k) { j = n; n++; }
    while (j > 0u && x > ${values}[base + ${sel}[j - 1u]]) { ${sel}[j] = ${sel}[j - 1u]; j--; }
    ${sel}[j] = i;
  }
}
var<private> ${sel}: array<u32, ${selLen}>;\n`;
}

export function routeSource(s: RouteShape): KernelSource {
  const params = [['tokens', 'u32'], ['norm', 'u32'], ['scaling', 'f32'], ['biasOff', 'u32']] as const;
  const e = s.numExperts;
  const k = s.k;
  const bindings = `@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
${s.bias ? '@group(0) @binding(3) var<storage, read> bias: array<f32>;\n' : ''}`;
  const head = `${paramsStruct(params)}${bindings}var<private> v: array<f32, ${e}>;\n`;
  const main = (body: string) => `@compute @workgroup_size(${ROUTE_WG})
fn main(${LINEAR_ENTRY_ARGS}) {
  ${LINEAR_WGID}
  let t = wgid * ${ROUTE_WG}u + li;
  if (t >= p.tokens) { return; }
  let ob = t * ${2 * k}u;
${body}
}\n`;
  if (s.kind === 'softmax_topk') {
    return {
      params,
      code: `${head}${topkFn('v', 'v', 'sel', k)}${main(`  var mx = -3.4e38;
  for (var i = 0u; i < ${e}u; i++) { v[i] = logits[t * ${e}u + i]; mx = max(mx, v[i]); }
  topk_v(0u, ${e}u, ${k}u);
  var sum = 0.0;
  for (var i = 0u; i < ${e}u; i++) { sum += exp(v[i] - mx); }
  var selSum = 0.0;
  for (var j = 0u; j < ${k}u; j++) {
    let w = exp(v[sel[j]] - mx) / sum;
    o[ob + j] = f32(sel[j]);
    o[ob + ${k}u + j] = w;
    selSum += w;
  }
  if (p.norm != 0u) { for (var j = 0u; j < ${k}u; j++) { o[ob + ${k}u + j] = o[ob + ${k}u + j] / selSum; } }`)}`,
    };
  }
  const gs = e / s.nGroup;
  const body = `  var sc: array<f32, ${e}>;
  for (var i = 0u; i < ${e}u; i++) {
    let s = 1.0 / (1.0 + exp(-logits[t * ${e}u + i]));
    sc[i] = s;
    v[i] = s${s.bias ? ' + bias[p.biasOff + i]' : ''};
  }
  for (var g = 0u; g < ${s.nGroup}u; g++) {
    topk_v(g * ${gs}u, ${gs}u, 2u);
    gv[g] = v[g * ${gs}u + sel[0]] + v[g * ${gs}u + sel[1]];
  }
  topk_gv(0u, ${s.nGroup}u, ${s.topkGroup}u);
  var kept: array<u32, ${s.nGroup}>;
  for (var j = 0u; j < ${s.topkGroup}u; j++) { kept[gsel[j]] = 1u; }
  for (var i = 0u; i < ${e}u; i++) { if (kept[i / ${gs}u] == 0u) { v[i] = 0.0; } }
  topk_v(0u, ${e}u, ${k}u);
  var sum = 0.0;
  for (var j = 0u; j < ${k}u; j++) { sum += sc[sel[j]]; }
  var denom = 1.0;
  if (p.norm != 0u) { denom = sum + 1e-20; }
  for (var j = 0u; j < ${k}u; j++) {
    o[ob + j] = f32(sel[j]);
    o[ob + ${k}u + j] = (sc[sel[j]] / denom) * p.scaling;
  }`;
  return {
    params,
    code: `${head}var<private> gv: array<f32, ${s.nGroup}>;\n${topkFn('v', 'v', 'sel', Math.max(k, 2))}${topkFn('gv', 'gv', 'gsel', s.topkGroup)}${main(body)}`,
  };
}
