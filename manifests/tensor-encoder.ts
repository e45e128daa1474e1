import type { RowSource } from './hf-source.ts';
import type { PlannedTensor } from './plan.ts';
import { encodeRows } from './quant.ts';
import type { ShardSink } from './shard-sink.ts';

/** Rows per read: about 4 Mi values (16 MiB of f32), so a huge embedding never sits in memory whole. */
const CHUNK_VALUES = 4 * 1024 * 1024;

/**
 * Streams a tensor from its source rows into a shard in its stored layout (main bytes, then block
 * scales). Rows the checkpoint already holds in the stored format (MXFP4 experts kept as MXFP4) are
 * copied byte for byte; everything else is decoded to f32 and encoded.
 */
export async function encodeTensor(sink: ShardSink, t: PlannedTensor, src: RowSource): Promise<void> {
  const rowsPerChunk = Math.max(1, Math.floor(CHUNK_VALUES / src.cols));
  const scales: Uint8Array[] = [];
  for (let r = 0; r < src.rows; r += rowsPerChunk) {
    const count = Math.min(rowsPerChunk, src.rows - r);
    const enc = src.native?.dtype === t.dtype ? await src.native.read(r, count) : encodeRows(await src.read(r, count), t.dtype);
    await sink.write(enc.main);
    if (enc.scales) scales.push(enc.scales);
  }
  await padTo4(sink, t.offset);
  for (const s of scales) await sink.write(s);
  await padTo4(sink, t.offset);
}

async function padTo4(sink: ShardSink, base: number): Promise<void> {
  const rel = sink.position - base;
  await sink.padTo(base + ((rel + 3) & ~3));
}
