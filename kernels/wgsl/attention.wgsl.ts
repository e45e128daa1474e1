/**
 * Causal grouped-query attention over a KV cache, any head widths (MLA's 576/512 included), with
 * an optional sliding window (query position p sees p - window + 1 .. p) over a cache that may be
 * a ring buffer (position t in row t % rows).
 *
 * One workgroup per (query row, head). It walks the visible keys in tiles of ATTN_WG: each thread
 * scores one key against the query (kept in workgroup memory), the tile's max and sum meet in tree
 * reductions, and an online softmax (running max m, running sum l, accumulator rescaled by
 * exp(m_old - m_new)) keeps everything in f32 and max-subtracted however long the context. Each
 * thread owns ceil(dv / ATTN_WG) output columns, so value reads are coalesced across threads.
 */
import { LINEAR_ENTRY_ARGS, LINEAR_WGID, paramsStruct, type KernelSource } from './common.wgsl.ts';

export const ATTN_WG = 64;

/**
 * `split`: flash-decoding for few (row, head) pairs over long caches. Workgroup (row, head, s)
 * covers positions [kBase + s·chunk, kBase + (s+1)·chunk) and writes its partial (m, l, acc[dv]) to `o` (stride dv + 2);
 * attentionCombineSource merges the splits. Without it, decode would run one workgroup per head.
 */
export function attentionSource(dk: number, dv: number, vec4K: boolean, split = false, sinks = false): KernelSource {
  const params = [
    ['splits', 'u32'],
    ['chunk', 'u32'],
    ['M', 'u32'],
    ['heads', 'u32'],
    ['group', 'u32'],
    ['startPos', 'u32'],
    ['qStride', 'u32'],
    ['kStride', 'u32'],
    ['vStride', 'u32'],
    ['vOff', 'u32'],
    ['outStride', 'u32'],
    ['window', 'u32'],
    ['rows', 'u32'],
    ['kBase', 'u32'],
    ['scale', 'f32'],
    ['sinkOff', 'u32'],
  ] as const;
  const NV = Math.ceil(dv / ATTN_WG);
  const WG = ATTN_WG;
  const kDecl = vec4K
    ? '@group(0) @binding(3) var<storage, read> k: array<vec4<f32>>;'
    : '@group(0) @binding(3) var<storage, read> k: array<f32>;';
  const score = vec4K
    ? `      let kb = (row * p.kStride + g * DK) / 4u;
      var a = vec4<f32>(0.0);
      for (var c = 0u; c < DK / 4u; c++) { a = fma(vec4<f32>(qs[4u * c], qs[4u * c + 1u], qs[4u * c + 2u], qs[4u * c + 3u]), k[kb + c], a); }
      sc = a.x + a.y + a.z + a.w;`
    : `      let kb = row * p.kStride + g * DK;
      var a = 0.0;
      for (var c = 0u; c < DK; c++) { a = fma(qs[c], k[kb + c], a); }
      sc = a;`;
  const code = `${paramsStruct(params)}@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<storage, read> q: array<f32>;
${kDecl}
@group(0) @binding(4) var<storage, read> v: array<f32>;
${sinks ? '@group(0) @binding(5) var<storage, read> sinks: array<u32>;\n' : ''}const DK = ${dk}u;
const DV = ${dv}u;
const WG = ${WG}u;
var<workgroup> qs: array<f32, ${dk}>;
var<workgroup> ps: array<f32, ${WG}>;
var<workgroup> red: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(${LINEAR_ENTRY_ARGS}) {
  ${LINEAR_WGID}
  if (wgid >= p.M * p.heads * p.splits) { return; }
  let sp = wgid % p.splits;
  let i = wgid / (p.heads * p.splits);
  let h = (wgid / p.splits) % p.heads;
  let g = h / p.group;
  for (var c = li; c < DK; c += WG) { qs[c] = q[i * p.qStride + h * DK + c] * p.scale; }
  workgroupBarrier();
  // keys [lo, pos] are visible; this split covers [kBase + sp·chunk, kBase + (sp+1)·chunk)
  let pos = p.startPos + i;
  let lo = select(0u, pos + 1u - min(pos + 1u, p.window), p.window > 0u);
  let n = min(pos + 1u, p.kBase + (sp + 1u) * p.chunk);
  var mRun = -3.0e38;
  var l = 0.0;
${
    sinks
      ? `  // the head's sink is one more logit with a zero value vector; split 0 alone counts it, so the
  // combine step sees it exactly once
  if (sp == 0u) {
    mRun = bitcast<f32>(sinks[p.sinkOff + h]);
    l = 1.0;
  }`
      : ''
  }
  var acc: array<f32, ${NV}>;
  for (var t0 = max(lo, p.kBase + sp * p.chunk); t0 < n; t0 += WG) {
    let t = t0 + li;
    let r0 = t0 % p.rows;
    var sc = -3.0e38;
    if (t < n) {
      let row = (r0 + li) % p.rows;
${score}
    }
    red[li] = sc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
      if (li < s) { red[li] = max(red[li], red[li + s]); }
      workgroupBarrier();
    }
    let mNew = max(mRun, red[0]);
    workgroupBarrier();
    let pr = select(0.0, exp(sc - mNew), t < n);
    ps[li] = pr;
    red[li] = pr;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
      if (li < s) { red[li] = red[li] + red[li + s]; }
      workgroupBarrier();
    }
    let alpha = exp(mRun - mNew);
    l = l * alpha + red[0];
    mRun = mNew;
    let cnt = min(WG, n - t0);
    for (var j = 0u; j < ${NV}u; j++) {
      let c = li + j * WG;
      if (c < DV) {
        var a = acc[j] * alpha;
        let vc = p.vOff + g * DV + c;
        // consecutive positions sit in consecutive rows, wrapping at the end of a ring
        var row = r0;
        for (var tt = 0u; tt < cnt; tt++) {
          a = fma(ps[tt], v[row * p.vStride + vc], a);
          row = select(row + 1u, 0u, row + 1u == p.rows);
        }
        acc[j] = a;
      }
    }
    workgroupBarrier();
  }
${
    split
      ? `  let base = ((i * p.heads + h) * p.splits + sp) * (DV + 2u);
  if (li == 0u) {
    o[base] = mRun;
    o[base + 1u] = l;
  }
  for (var j = 0u; j < ${NV}u; j++) {
    let c = li + j * WG;
    if (c < DV) { o[base + 2u + c] = acc[j]; }
  }`
      : `  for (var j = 0u; j < ${NV}u; j++) {
    let c = li + j * WG;
    if (c < DV) { o[i * p.outStride + h * DV + c] = acc[j] / l; }
  }`
  }
}\n`;
  return { params, code };
}

/** Merges split partials: out = Σ e^(m_s - M) acc_s / Σ e^(m_s - M) l_s, M the largest m_s. */
export function attentionCombineSource(): KernelSource {
  const params = [
    ['count', 'u32'],
    ['heads', 'u32'],
    ['splits', 'u32'],
    ['dv', 'u32'],
    ['outStride', 'u32'],
  ] as const;
  const code = `${paramsStruct(params)}@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<storage, read> part: array<f32>;
@compute @workgroup_size(${ATTN_WG})
fn main(${LINEAR_ENTRY_ARGS}) {
  ${LINEAR_WGID}
  let e = wgid * ${ATTN_WG}u + li;
  if (e >= p.count) { return; }
  let c = e % p.dv;
  let ih = e / p.dv;
  let base = ih * p.splits * (p.dv + 2u);
  var mx = -3.0e38;
  for (var s = 0u; s < p.splits; s++) { mx = max(mx, part[base + s * (p.dv + 2u)]); }
  var num = 0.0;
  var den = 0.0;
  for (var s = 0u; s < p.splits; s++) {
    let b = base + s * (p.dv + 2u);
    let w = exp(part[b] - mx);
    num = fma(w, part[b + 2u + c], num);
    den = fma(w, part[b + 1u], den);
  }
  let i = ih / p.heads;
  let h = ih % p.heads;
  o[i * p.outStride + h * p.dv + c] = num / den;
}\n`;
  return { params, code };
}
