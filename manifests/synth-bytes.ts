import { createCipheriv, createHash } from 'node:crypto';
import type { PlannedTensor } from './plan.ts';
import { FORMATS, tensorLayout, type WeightFormat } from './formats/index.ts';
import { matrixDims } from './quant.ts';
import type { ShardSink } from './shard-sink.ts';

/** Random bytes every tensor's blocks are drawn from: one AES-128-CTR keystream per seed. */
const POOL = 16 * 1024 * 1024;
/** A tensor is a sequence of BLOCK-byte windows of the pool, each at its own 4-aligned offset. */
const BLOCK = 64 * 1024;

const pools = new Map<string, Uint8Array>();

/**
 * The seed's random pool with one format's exponent patch applied (no NaN, Inf or huge scales).
 * Every patch acts on aligned 1-, 2- or 4-byte values, so any 4-aligned window of it stays sane.
 */
function patchedPool(seed: number, f: WeightFormat, part: 'main' | 'scales'): Uint8Array {
  const key = `${seed}:${f.name}:${part}`;
  let pool = pools.get(key);
  if (!pool) {
    const aesKey = createHash('sha256').update(`rdrr-synth-pool:${seed}`).digest().subarray(0, 16);
    const bytes = createCipheriv('aes-128-ctr', aesKey, Buffer.alloc(16)).update(Buffer.alloc(POOL));
    pool = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
    (part === 'main' ? f.synth.main : f.synth.scales!)(pool);
    pools.set(key, pool);
  }
  return pool;
}

/** sfc32: a small, fast PRNG; seeded per tensor so every tensor draws its own windows. */
function sfc32(seed: Buffer): () => number {
  let a = seed.readUInt32LE(0), b = seed.readUInt32LE(4), c = seed.readUInt32LE(8), d = seed.readUInt32LE(12);
  return () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
}

/**
 * Random weights written directly in their stored format, deterministic in (seed, tensor name).
 * Producing the bytes must cost far less than hashing them (a 671B synth hashes ~380 GB): a 16 MiB
 * AES keystream per seed is patched once per format, then each tensor is a run of 64 KiB windows of
 * it at offsets drawn from a per-tensor PRNG, handed to the sink as slices (written by one writev,
 * never copied in JS). Windows rarely repeat (2^22
 * offsets), so no two tensors share bytes and weights look like independent noise at any scale a
 * kernel or a test reads. Norm weights are 1.0 as a freshly initialised model has.
 */
export async function writeSynthTensor(sink: ShardSink, t: PlannedTensor, seed: number): Promise<void> {
  const { rows, cols } = matrixDims(t.spec.shape);
  const start = sink.position;
  if (t.spec.role === 'norm') {
    await sink.write(new Uint8Array(new Float32Array(rows * cols).fill(1).buffer));
    return;
  }
  const next = sfc32(createHash('sha256').update(`rdrr-synth:${seed}:${t.spec.name}`).digest());
  const emit = async (bytes: number, pool: Uint8Array): Promise<void> => {
    for (let done = 0; done < bytes; done += BLOCK) {
      const from = (next() % ((POOL - BLOCK) / 4)) * 4;
      await sink.write(pool.subarray(from, from + Math.min(BLOCK, bytes - done)));
    }
  };
  const f = FORMATS[t.dtype];
  const { blocks, mainBytes } = tensorLayout(f, rows, cols);
  await emit(mainBytes, patchedPool(seed, f, 'main'));
  if (f.synth.scales) {
    await sink.padTo(start + ((sink.position - start + 3) & ~3));
    await emit(blocks * f.scaleBytes, patchedPool(seed, f, 'scales'));
  }
  await sink.padTo(start + ((sink.position - start + 3) & ~3));
}
