/**
 * Absorbed multi-head latent attention against its definition. The engine never expands the
 * latent: per head it maps q_nope through W_kᵀ into the latent space, attends over the cached
 * [latent | rope key] rows with one shared KV head, and maps the result up through W_v. The
 * reference expands every cached latent into per-head keys (W_k·c ⊕ rope key) and values (W_v·c)
 * and runs standard attention. Random inputs, both backends; the two must agree to 1e-5 relative.
 */
import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../../engine/sampling.ts';
import { createCpuBackend, createWebGpuBackend, type Backend } from '../../../kernels/index.ts';
import { quantize } from '../../../manifests/index.ts';

const HEADS = 3;
const NOPE = 8;
const ROPE = 4;
const RANK = 12;
const VDIM = 6;
const T = 7;
const START = 4;
const M = T - START;
const SCALE = 1 / Math.sqrt(NOPE + ROPE);

function weight(backend: Backend, data: Float32Array, rows: number, cols: number) {
  return backend.weight(backend.upload(quantize(data, rows, cols, 'f32')), 0, 'f32', rows, cols);
}

describe.each([['cpu'], ['webgpu']] as const)('MLA on %s', (name) => {
  it('absorbed attention over the latent cache equals attention over expanded keys and values', async () => {
    const backend = name === 'cpu' ? createCpuBackend() : await createWebGpuBackend();
    const random = seededRandom(11);
    const rand = (n: number) => Float32Array.from({ length: n }, () => random() * 2 - 1);
    const wk = rand(HEADS * NOPE * RANK); // per head [NOPE, RANK]
    const wv = rand(HEADS * VDIM * RANK); // per head [VDIM, RANK]
    const latent = rand(T * RANK);
    const ropeKey = rand(T * ROPE);
    const qNope = rand(M * HEADS * NOPE);
    const qRope = rand(M * HEADS * ROPE);

    // reference: expand keys [T, HEADS*(NOPE+ROPE)] and values [T, HEADS*VDIM], standard attention
    const keys = new Float32Array(T * HEADS * (NOPE + ROPE));
    const values = new Float32Array(T * HEADS * VDIM);
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < HEADS; h++) {
        for (let i = 0; i < NOPE; i++) {
          let s = 0;
          for (let r = 0; r < RANK; r++) s += wk[(h * NOPE + i) * RANK + r]! * latent[t * RANK + r]!;
          keys[(t * HEADS + h) * (NOPE + ROPE) + i] = s;
        }
        for (let i = 0; i < ROPE; i++) keys[(t * HEADS + h) * (NOPE + ROPE) + NOPE + i] = ropeKey[t * ROPE + i]!;
        for (let i = 0; i < VDIM; i++) {
          let s = 0;
          for (let r = 0; r < RANK; r++) s += wv[(h * VDIM + i) * RANK + r]! * latent[t * RANK + r]!;
          values[(t * HEADS + h) * VDIM + i] = s;
        }
      }
    }
    const q = new Float32Array(M * HEADS * (NOPE + ROPE));
    for (let m = 0; m < M; m++) {
      for (let h = 0; h < HEADS; h++) {
        q.set(qNope.subarray((m * HEADS + h) * NOPE, (m * HEADS + h + 1) * NOPE), (m * HEADS + h) * (NOPE + ROPE));
        q.set(qRope.subarray((m * HEADS + h) * ROPE, (m * HEADS + h + 1) * ROPE), (m * HEADS + h) * (NOPE + ROPE) + NOPE);
      }
    }
    const ref = createCpuBackend();
    const [qa, ka, va, oa] = [ref.act(M, HEADS * (NOPE + ROPE)), ref.act(T, HEADS * (NOPE + ROPE)), ref.act(T, HEADS * VDIM), ref.act(M, HEADS * VDIM)];
    ref.write(qa, q);
    ref.write(ka, keys);
    ref.write(va, values);
    ref.attention(qa, ka, va, oa, { heads: HEADS, kvHeads: HEADS, dk: NOPE + ROPE, dv: VDIM, startPos: START, scale: SCALE });
    const expected = await ref.read(oa);

    // absorbed, as engine/forward.ts runs it
    const keyAbsorb = new Float32Array(HEADS * RANK * NOPE);
    for (let h = 0; h < HEADS; h++) for (let i = 0; i < NOPE; i++) for (let r = 0; r < RANK; r++) keyAbsorb[(h * RANK + r) * NOPE + i] = wk[(h * NOPE + i) * RANK + r]!;
    const cache = new Float32Array(T * (RANK + ROPE));
    for (let t = 0; t < T; t++) {
      cache.set(latent.subarray(t * RANK, (t + 1) * RANK), t * (RANK + ROPE));
      cache.set(ropeKey.subarray(t * ROPE, (t + 1) * ROPE), t * (RANK + ROPE) + RANK);
    }
    const b = backend;
    const [qn, qr, ql, qf, c, ctx, out] = [
      b.act(M, HEADS * NOPE), b.act(M, HEADS * ROPE), b.act(M, HEADS * RANK), b.act(M, HEADS * (RANK + ROPE)),
      b.act(T, RANK + ROPE), b.act(M, HEADS * RANK), b.act(M, HEADS * VDIM),
    ];
    b.write(qn, qNope);
    b.write(qr, qRope);
    b.write(c, cache);
    b.matmulHeads(qn, weight(b, keyAbsorb, HEADS * RANK, NOPE), ql, HEADS);
    const rows = b.view(qf, M * HEADS, RANK + ROPE);
    b.copy(b.view(ql, M * HEADS, RANK), 0, 0, rows, 0, 0, M * HEADS, RANK);
    b.copy(b.view(qr, M * HEADS, ROPE), 0, 0, rows, 0, RANK, M * HEADS, ROPE);
    b.attention(qf, c, c, ctx, { heads: HEADS, kvHeads: 1, dk: RANK + ROPE, dv: RANK, startPos: START, scale: SCALE, vColOffset: 0 });
    b.matmulHeads(ctx, weight(b, wv, HEADS * VDIM, RANK), out, HEADS);
    const got = await b.read(out);

    const scale = Math.max(...expected.map(Math.abs));
    for (let i = 0; i < expected.length; i++) expect(Math.abs(got[i]! - expected[i]!)).toBeLessThanOrEqual(1e-5 * scale);
  });
});
