import { createCipheriv, createHash, type Cipher } from 'node:crypto';
import type { PlannedTensor } from './plan.ts';
import { isBlockDtype, matrixDims } from './quant.ts';
import type { ShardSink } from './shard-sink.ts';
import { QUANT_BLOCK } from './types.ts';

const CHUNK = 8 * 1024 * 1024;

/**
 * Random weights written directly in their stored format, deterministic in (seed, tensor name).
 * The bytes come from an AES-128-CTR keystream (hardware AES: GB/s, where a JS PRNG plus quantizing
 * f32 would dominate a 671B synth), then exponent bits are pinned so every value is a sane small
 * weight: no NaN, Inf or huge scales. Norm weights are 1.0 as a freshly initialised model has.
 */
export async function writeSynthTensor(sink: ShardSink, t: PlannedTensor, seed: number): Promise<void> {
  const { rows, cols } = matrixDims(t.spec.shape);
  const n = rows * cols;
  const start = sink.position;
  if (t.spec.role === 'norm') {
    const ones = new Float32Array(n).fill(1);
    await sink.write(new Uint8Array(ones.buffer));
    return;
  }
  const key = createHash('sha256').update(`rdrr-synth:${seed}:${t.spec.name}`).digest().subarray(0, 16);
  const stream = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const zeros = new Uint8Array(CHUNK);
  const emit = async (bytes: number, patch: (chunk: Uint8Array) => void): Promise<void> => {
    for (let done = 0; done < bytes; done += CHUNK) {
      const len = Math.min(CHUNK, bytes - done);
      const chunk = keystream(stream, zeros, len);
      patch(chunk);
      await sink.write(chunk);
    }
  };
  switch (t.dtype) {
    case 'f32':
      // exponent 120: |w| in [2^-7, 2^-6)
      await emit(n * 4, (c) => patchBits32(c, 0x807fffff, 0x3c000000));
      break;
    case 'f16':
      // exponent 8: |w| in [2^-7, 2^-6)
      await emit(n * 2, (c) => patchBits16(c, 0x83ff, 0x2000));
      break;
    default: {
      if (!isBlockDtype(t.dtype)) throw new Error(`unknown dtype ${t.dtype}`);
      const nb = n / QUANT_BLOCK;
      await emit(nb * (t.dtype === 'q8_0' ? 32 : 16), () => undefined);
      // Scales: exponent 4 (q8_0, d ≈ 2^-11, |w| ≤ ~0.12) or 6 (q4_0, d ≈ 2^-9, |w| ≤ ~0.03).
      await sink.padTo(start + ((sink.position - start + 3) & ~3));
      await emit(nb * 2, (c) => patchBits16(c, 0x83ff, t.dtype === 'q8_0' ? 0x1000 : 0x1800));
    }
  }
  await sink.padTo(start + ((sink.position - start + 3) & ~3));
}

function keystream(cipher: Cipher, zeros: Uint8Array, len: number): Uint8Array {
  const out = cipher.update(zeros.subarray(0, len));
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

function patchBits16(c: Uint8Array, keep: number, set: number): void {
  // Chunks are CHUNK-sized (even) except the last, whose length is also even here.
  const u = c.byteOffset % 2 === 0 ? new Uint16Array(c.buffer, c.byteOffset, c.length >> 1) : null;
  if (u) for (let i = 0; i < u.length; i++) u[i] = (u[i]! & keep) | set;
  else for (let i = 0; i + 1 < c.length; i += 2) {
    const v = ((c[i]! | (c[i + 1]! << 8)) & keep) | set;
    c[i] = v & 0xff;
    c[i + 1] = v >>> 8;
  }
}

function patchBits32(c: Uint8Array, keep: number, set: number): void {
  const copy = c.byteOffset % 4 === 0 ? c : c.slice();
  const u = new Uint32Array(copy.buffer, copy.byteOffset, copy.length >> 2);
  for (let i = 0; i < u.length; i++) u[i] = ((u[i]! & keep) | set) >>> 0;
  if (copy !== c) c.set(copy);
}
