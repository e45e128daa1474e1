/** Shape checks shared by every backend, so a misuse fails the same way whichever one runs. */
import { ROUTE_MAX_EXPERTS, ROUTED_EXPERT_DTYPES, type Act, type AttentionParams, type ExpertSlabs, type RopeParams, type RouteParams, type Weight } from './backend.ts';
import { KernelError } from './layout.ts';

const shape = (a: { rows: number; cols: number }): string => `[${a.rows}, ${a.cols}]`;

export function checkActShape(rows: number, cols: number): void {
  if (!(Number.isInteger(rows) && Number.isInteger(cols) && rows >= 0 && cols >= 0)) {
    throw new KernelError(`activation shape [${rows}, ${cols}] is not a non-negative integer shape`);
  }
}

export function checkWrite(a: Act, length: number, rowOffset: number): void {
  if (length % Math.max(a.cols, 1) !== 0 || rowOffset < 0 || rowOffset * a.cols + length > a.rows * a.cols) {
    throw new KernelError(`write of ${length} values at row ${rowOffset} does not fit activation ${shape(a)}`);
  }
}

export function checkEmbed(ids: Uint32Array, table: Weight, out: Act): void {
  if (out.rows !== ids.length || out.cols !== table.cols) {
    throw new KernelError(`embed: ${ids.length} ids of a ${shape(table)} table into ${shape(out)}`);
  }
  for (const id of ids) {
    if (id >= table.rows) throw new KernelError(`embed: token id ${id} is outside the ${table.rows}-row table`);
  }
}

export function checkMatmul(x: Act, w: Weight, out: Act): void {
  if (x.cols !== w.cols || out.rows !== x.rows || out.cols !== w.rows) {
    throw new KernelError(`matmul: x ${shape(x)} · w ${shape(w)}ᵀ into ${shape(out)}`);
  }
}

export function checkMatmulHeads(x: Act, w: Weight, out: Act, heads: number): void {
  const n = w.rows / heads;
  if (!Number.isInteger(n) || x.cols !== heads * w.cols || out.rows !== x.rows || out.cols !== w.rows) {
    throw new KernelError(`matmulHeads: x ${shape(x)} with ${heads} heads · w ${shape(w)} into ${shape(out)}`);
  }
}

export function checkRmsnorm(x: Act, w: Weight, out: Act): void {
  if (w.rows !== 1 || (x.rows * x.cols) % w.cols !== 0 || out.rows * out.cols !== x.rows * x.cols) {
    throw new KernelError(`rmsnorm: x ${shape(x)} with weight ${shape(w)} into ${shape(out)}`);
  }
}

export function checkRope(x: Act, p: RopeParams): void {
  const ok =
    p.ropeDim > 0 &&
    p.ropeDim % 2 === 0 &&
    p.ropeOffset >= 0 &&
    p.ropeOffset + p.ropeDim <= p.headStride &&
    (p.heads - 1) * p.headStride + p.ropeOffset + p.ropeDim <= x.cols &&
    p.startPos >= 0 &&
    (p.invFreq === undefined || p.invFreq.length === p.ropeDim / 2);
  if (!ok) throw new KernelError(`rope: parameters ${JSON.stringify({ ...p, invFreq: p.invFreq?.length })} do not fit ${shape(x)}`);
}

export function checkSameShape(op: string, ...acts: Act[]): void {
  const [a] = acts;
  if (acts.some((b) => b.rows * b.cols !== a!.rows * a!.cols)) {
    throw new KernelError(`${op}: element counts differ: ${acts.map(shape).join(', ')}`);
  }
}

export function checkCopy(src: Act, srcRow: number, srcCol: number, dst: Act, dstRow: number, dstCol: number, rows: number, cols: number): void {
  const ok =
    [srcRow, srcCol, dstRow, dstCol, rows, cols].every((v) => Number.isInteger(v) && v >= 0) &&
    srcRow + rows <= src.rows &&
    srcCol + cols <= src.cols &&
    dstRow + rows <= dst.rows &&
    dstCol + cols <= dst.cols;
  if (!ok) {
    throw new KernelError(`copy: ${rows}×${cols} from ${shape(src)} at (${srcRow}, ${srcCol}) to ${shape(dst)} at (${dstRow}, ${dstCol})`);
  }
}

export function checkGather(x: Act, rows: Uint32Array, out: Act): void {
  if (out.rows !== rows.length || out.cols !== x.cols) throw new KernelError(`gather: ${rows.length} rows of ${shape(x)} into ${shape(out)}`);
  for (const r of rows) if (r >= x.rows) throw new KernelError(`gather: row ${r} is outside ${shape(x)}`);
}

export function checkScatterAdd(y: Act, rows: Uint32Array, scale: Float32Array, out: Act): void {
  if (y.rows !== rows.length || scale.length !== rows.length || y.cols !== out.cols) {
    throw new KernelError(`scatterAdd: ${shape(y)} with ${rows.length} rows and ${scale.length} scales into ${shape(out)}`);
  }
  const seen = new Set<number>();
  for (const r of rows) {
    if (r >= out.rows) throw new KernelError(`scatterAdd: row ${r} is outside ${shape(out)}`);
    if (seen.has(r)) throw new KernelError(`scatterAdd: row ${r} appears twice`);
    seen.add(r);
  }
}

export function checkAttention(q: Act, k: Act, v: Act, out: Act, p: AttentionParams): void {
  const vOff = p.vColOffset ?? 0;
  const rows = p.cacheRows ?? p.startPos + q.rows;
  const windowOk = p.window === undefined || (Number.isInteger(p.window) && p.window > 0);
  const ringOk = p.cacheRows === undefined || (p.window !== undefined && Number.isInteger(p.cacheRows) && p.cacheRows >= Math.min(p.startPos + q.rows, p.window - 1 + q.rows));
  const ok =
    windowOk &&
    ringOk &&
    p.heads > 0 &&
    p.kvHeads > 0 &&
    p.heads % p.kvHeads === 0 &&
    p.dk > 0 &&
    p.dv > 0 &&
    p.startPos >= 0 &&
    q.cols === p.heads * p.dk &&
    out.rows === q.rows &&
    out.cols === p.heads * p.dv &&
    k.cols >= p.kvHeads * p.dk &&
    v.cols >= vOff + p.kvHeads * p.dv &&
    k.rows >= rows &&
    v.rows >= rows;
  if (!ok) {
    throw new KernelError(`attention: q ${shape(q)}, k ${shape(k)}, v ${shape(v)}, out ${shape(out)} do not fit ${JSON.stringify({ ...p, sinks: p.sinks && shape(p.sinks) })}`);
  }
  if (p.sinks) checkVector('attention sinks', p.sinks, p.heads);
}

/** A bias-like weight: an f32 vector of n values. */
function checkVector(what: string, w: Weight, n: number): void {
  if (w.rows !== 1 || w.cols !== n || w.dtype !== 'f32') throw new KernelError(`${what}: expected an f32 vector of ${n}, got ${w.dtype} ${shape(w)}`);
}

export function checkAddBias(x: Act, bias: Weight, out: Act): void {
  checkVector('addBias', bias, x.cols);
  if (out.rows !== x.rows || out.cols !== x.cols) throw new KernelError(`addBias: x ${shape(x)} into ${shape(out)}`);
}

/** Inverse frequencies of RoPE pair j, rounded to f32 as transformers computes them. */
export function ropeInvFreq(p: RopeParams): Float32Array {
  if (p.invFreq) return p.invFreq;
  const f = new Float32Array(p.ropeDim / 2);
  for (let j = 0; j < f.length; j++) f[j] = 1 / Math.fround(p.theta ** Math.fround((2 * j) / p.ropeDim));
  return f;
}

/**
 * The shapes and router settings `route` accepts: the same rules router/ enforces, checked before
 * any kernel runs. gpt-oss's topk_softmax has no kernel and is refused by name.
 */
export function checkRoute(logits: Act, p: RouteParams, bias: Weight | null, out: Act): asserts p is RouteParams & { router: 'softmax_topk' | 'sigmoid_group_limited' } {
  const e = p.numExperts;
  if (!Number.isInteger(e) || e <= 0 || e > ROUTE_MAX_EXPERTS) throw new KernelError(`route: numExperts must be in 1..${ROUTE_MAX_EXPERTS}, got ${e}`);
  if (!Number.isInteger(p.topK) || p.topK <= 0 || p.topK > e) throw new KernelError(`route: topK must be in 1..${e}, got ${p.topK}`);
  if (logits.cols !== e || out.rows !== logits.rows || out.cols !== 2 * p.topK) {
    throw new KernelError(`route: logits ${shape(logits)} for ${e} experts, top-${p.topK}, into ${shape(out)} (expected [${logits.rows}, ${2 * p.topK}])`);
  }
  if (p.router === 'softmax_topk') {
    if (bias !== null) throw new KernelError('route: softmax_topk routing takes no correction bias');
    return;
  }
  if (p.router === 'topk_softmax') throw new KernelError('route: topk_softmax (gpt-oss) routing has no kernel; it is routed on the CPU');
  if (p.router !== 'sigmoid_group_limited') throw new KernelError(`route: unknown router kind "${String(p.router)}"`);
  if (!Number.isInteger(p.nGroup) || p.nGroup <= 0 || e % p.nGroup !== 0 || e / p.nGroup < 2) {
    throw new KernelError(`route: nGroup ${p.nGroup} must divide ${e} experts into groups of at least 2`);
  }
  if (!Number.isInteger(p.topkGroup) || p.topkGroup <= 0 || p.topkGroup > p.nGroup) throw new KernelError(`route: topkGroup must be in 1..${p.nGroup}, got ${p.topkGroup}`);
  if (bias !== null && (bias.dtype !== 'f32' || bias.rows * bias.cols !== e)) {
    throw new KernelError(`route: the correction bias must be f32 with ${e} values, got ${bias.dtype} ${shape(bias)}`);
  }
}

/** Slabs of equal-shape slots at one 256-byte-multiple stride in one region each, applied to a single token. */
export function checkRoutedExperts(x: Act, routing: Act, slabs: ExpertSlabs, out: Act): void {
  const e = slabs.gate.length;
  if (e === 0 || slabs.up.length !== e || slabs.down.length !== e) {
    throw new KernelError(`routedExperts: slabs hold ${slabs.gate.length} gate, ${slabs.up.length} up and ${slabs.down.length} down slots; they must be equal and non-zero`);
  }
  for (const [kind, slots] of [['gate', slabs.gate], ['up', slabs.up], ['down', slabs.down]] as const) {
    const first = slots[0]!;
    if (!ROUTED_EXPERT_DTYPES.includes(first.dtype)) throw new KernelError(`routedExperts: ${kind} slots are ${first.dtype}; experts can be picked on the device only in ${ROUTED_EXPERT_DTYPES.join(', ')}`);
    const stride = e > 1 ? slots[1]!.byteOffset - first.byteOffset : 0;
    // 256-byte slots keep every slot on the alignment the GEMV kernels pick their variant by
    if (first.byteOffset % 256 !== 0 || stride % 256 !== 0) {
      throw new KernelError(`routedExperts: ${kind} slots start at byte ${first.byteOffset} with a stride of ${stride}; both must be multiples of 256`);
    }
    slots.forEach((w, i) => {
      if (w.src !== first.src || w.dtype !== first.dtype || w.rows !== first.rows || w.cols !== first.cols || w.byteOffset !== first.byteOffset + i * stride) {
        throw new KernelError(`routedExperts: ${kind} slot ${i} is not at a fixed stride in the same slab with the same shape and format as slot 0`);
      }
    });
  }
  const g = slabs.gate[0]!;
  const d = slabs.down[0]!;
  const u = slabs.up[0]!;
  if (x.rows !== 1 || x.cols !== g.cols || u.cols !== g.cols || u.rows !== g.rows || d.cols !== g.rows || out.rows !== 1 || out.cols !== d.rows) {
    throw new KernelError(`routedExperts: x ${shape(x)} through gate ${shape(g)}, up ${shape(u)}, down ${shape(d)} into ${shape(out)} (one token)`);
  }
  if (routing.rows !== 1 || routing.cols % 2 !== 0 || routing.cols === 0 || routing.cols / 2 > e) {
    throw new KernelError(`routedExperts: routing ${shape(routing)} must be [1, 2k] with k ≤ ${e}`);
  }
}

export function checkRowsTo(what: string, x: Act, out: Act, col: number): void {
  if (out.rows !== x.rows || !Number.isInteger(col) || col < 0 || col >= out.cols) {
    throw new KernelError(`${what}: ${x.rows} rows of x ${shape(x)} into column ${col} of ${shape(out)}`);
  }
}
