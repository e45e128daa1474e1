/**
 * Small per-flush data (uniform parameters, token ids, scales, RoPE frequencies, act writes) packed
 * into 256-byte-aligned slots of shared chunk buffers. Recording fills a CPU shadow; `beforeSubmit`
 * writes every touched chunk with one writeBuffer each, ahead of the command buffer that reads
 * them; chunks return to the free list once the GPU has finished that submission.
 */
import { BufferUsage } from './usage.ts';

const CHUNK = 1 << 20;
const ALIGN = 256;

interface Chunk {
  buffer: GPUBuffer;
  shadow: Uint8Array;
  used: number;
}

export interface Slot {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

export class Arena {
  private readonly device: GPUDevice;
  private readonly free: Chunk[] = [];
  private readonly recording: Chunk[] = [];
  /** Oversized allocations: their own buffers, destroyed after the submission that used them. */
  private readonly dedicated: GPUBuffer[] = [];
  private chunkBytes = 0;
  /** Bytes handed to the device so far (chunk writes whole up to their last slot, dedicated buffers). */
  written = 0;

  constructor(device: GPUDevice) {
    this.device = device;
  }

  get bytes(): number {
    return this.chunkBytes;
  }

  alloc(data: ArrayBufferView): Slot {
    const src = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const size = Math.max(16, (src.byteLength + 15) & ~15);
    if (size > CHUNK) {
      const buffer = this.device.createBuffer({ size, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC, mappedAtCreation: true });
      new Uint8Array(buffer.getMappedRange()).set(src);
      buffer.unmap();
      this.written += size;
      this.dedicated.push(buffer);
      return { buffer, offset: 0, size };
    }
    let chunk = this.recording[this.recording.length - 1];
    if (!chunk || chunk.used + size > CHUNK) {
      chunk = this.free.pop() ?? this.newChunk();
      chunk.used = 0;
      this.recording.push(chunk);
    }
    const offset = chunk.used;
    chunk.shadow.set(src, offset);
    chunk.used = (offset + size + ALIGN - 1) & ~(ALIGN - 1);
    return { buffer: chunk.buffer, offset, size };
  }

  /**
   * Makes the next allocations, up to `bytes` in all (slots rounded to 256), land in one chunk,
   * and returns that chunk's buffer (for kernels that patch the parameters of later ones).
   */
  reserve(bytes: number): GPUBuffer {
    if (bytes > CHUNK) throw new RangeError(`arena: cannot reserve ${bytes} bytes in one ${CHUNK}-byte chunk`);
    let chunk = this.recording[this.recording.length - 1];
    if (!chunk || chunk.used + bytes > CHUNK) {
      chunk = this.free.pop() ?? this.newChunk();
      chunk.used = 0;
      this.recording.push(chunk);
    }
    return chunk.buffer;
  }

  /** A zeroed slot of `words` u32s and a view of it to fill in until the submission. */
  allocWords(words: number): { slot: Slot; words: Uint32Array } {
    if (words * 4 > CHUNK) throw new RangeError(`arena: ${words} words do not fit one chunk`);
    const slot = this.alloc(new Uint32Array(words));
    const chunk = this.recording[this.recording.length - 1]!;
    return { slot, words: new Uint32Array(chunk.shadow.buffer, chunk.shadow.byteOffset + slot.offset, words) };
  }

  /** Writes the recorded chunks; returns what to do once the submission is done. */
  beforeSubmit(queue: GPUQueue): () => void {
    const chunks = this.recording.splice(0);
    const dedicated = this.dedicated.splice(0);
    for (const c of chunks) {
      const bytes = Math.min(c.used, CHUNK);
      queue.writeBuffer(c.buffer, 0, c.shadow.buffer, c.shadow.byteOffset, bytes);
      this.written += bytes;
    }
    return () => {
      this.free.push(...chunks);
      for (const b of dedicated) b.destroy();
    };
  }

  private newChunk(): Chunk {
    this.chunkBytes += CHUNK;
    return {
      buffer: this.device.createBuffer({ size: CHUNK, usage: BufferUsage.UNIFORM | BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC }),
      shadow: new Uint8Array(CHUNK),
      used: 0,
    };
  }
}
