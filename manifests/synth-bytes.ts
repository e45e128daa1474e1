import { createCipheriv, createHash, type Cipher } from 'node:crypto';
import type { PlannedTensor } from './plan.ts';
import { FORMATS, tensorLayout } from './formats/index.ts';
import { matrixDims } from './quant.ts';
import type { ShardSink } from './shard-sink.ts';

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
  const f = FORMATS[t.dtype];
  const { blocks, mainBytes } = tensorLayout(f, rows, cols);
  await emit(mainBytes, f.synth.main);
  if (f.synth.scales) {
    await sink.padTo(start + ((sink.position - start + 3) & ~3));
    await emit(blocks * f.scaleBytes, f.synth.scales);
  }
  await sink.padTo(start + ((sink.position - start + 3) & ~3));
}

function keystream(cipher: Cipher, zeros: Uint8Array, len: number): Uint8Array {
  const out = cipher.update(zeros.subarray(0, len));
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}
