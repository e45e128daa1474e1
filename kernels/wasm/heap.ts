/**
 * A first-fit allocator over a WebAssembly memory, below which sit the kernels' argument block
 * and static data (the first 64 KiB). Blocks are 64-byte aligned (cache lines; v128 loads of a
 * row never straddle two blocks' lines needlessly); freed neighbours merge; the memory grows when
 * nothing fits.
 */
import type { HostMemory, HostRegion } from '../cpu/memory.ts';
import { KernelError } from '../layout.ts';

const PAGE = 65536;
const ALIGN = 64;
/** wasm32 addresses 4 GiB; one byte short keeps every end address a valid u32. */
const MAX_PAGES = 65536;
export const HEAP_BASE = PAGE;

class WasmRegion implements HostRegion {
  readonly ptr: number;
  readonly byteLength: number;
  readonly size: number;
  private readonly memory: WebAssembly.Memory;
  private u8: Uint8Array | null = null;
  private f32: Float32Array | null = null;
  constructor(memory: WebAssembly.Memory, ptr: number, byteLength: number, size: number) {
    this.memory = memory;
    this.ptr = ptr;
    this.byteLength = byteLength;
    this.size = size;
  }
  bytes(): Uint8Array {
    if (this.u8?.buffer !== this.memory.buffer) this.u8 = new Uint8Array(this.memory.buffer, this.ptr, this.byteLength);
    return this.u8;
  }
  floats(): Float32Array {
    if (this.f32?.buffer !== this.memory.buffer) this.f32 = new Float32Array(this.memory.buffer, this.ptr, this.byteLength >>> 2);
    return this.f32;
  }
}

interface Free {
  ptr: number;
  size: number;
}

export class WasmHeap implements HostMemory {
  readonly memory: WebAssembly.Memory;
  /** Sorted by address, never adjacent (merged on free). */
  private readonly free_: Free[] = [];
  private top: number;

  constructor(memory: WebAssembly.Memory) {
    this.memory = memory;
    this.top = memory.buffer.byteLength;
    if (this.top > HEAP_BASE) this.free_.push({ ptr: HEAP_BASE, size: this.top - HEAP_BASE });
  }

  alloc(byteLength: number): WasmRegion {
    const size = Math.max(ALIGN, Math.ceil(byteLength / ALIGN) * ALIGN);
    let i = this.free_.findIndex((f) => f.size >= size);
    if (i < 0) i = this.grow(size);
    const f = this.free_[i]!;
    const region = new WasmRegion(this.memory, f.ptr, byteLength, size);
    if (f.size === size) this.free_.splice(i, 1);
    else {
      f.ptr += size;
      f.size -= size;
    }
    region.bytes().fill(0);
    return region;
  }

  free(r: HostRegion): void {
    if (!(r instanceof WasmRegion)) throw new KernelError('region does not belong to this WebAssembly heap');
    let i = this.free_.findIndex((f) => f.ptr > r.ptr);
    if (i < 0) i = this.free_.length;
    this.free_.splice(i, 0, { ptr: r.ptr, size: r.size });
    this.mergeAround(i);
  }

  /** Bytes of the memory (heap and the block below it). */
  get byteLength(): number {
    return this.memory.buffer.byteLength;
  }

  /** Grows the memory so a block of `size` fits at its end; returns that free block's index. */
  private grow(size: number): number {
    const last = this.free_.at(-1);
    const tail = last && last.ptr + last.size === this.top ? last.size : 0;
    const pages = this.top / PAGE;
    // by at least 1 MiB or an eighth, so many small allocations grow it rarely
    const want = Math.max(Math.ceil((size - tail) / PAGE), 16, pages >> 3);
    const add = Math.min(want, MAX_PAGES - pages);
    if (add * PAGE < size - tail) {
      throw new KernelError(`WebAssembly memory is full: ${size} more bytes do not fit in wasm32's 4 GiB (${this.top} bytes in use or free)`);
    }
    try {
      this.memory.grow(add);
    } catch (e) {
      throw new KernelError(`WebAssembly memory could not grow by ${add * PAGE} bytes (${this.top} now)`, { cause: e });
    }
    this.free_.push({ ptr: this.top, size: add * PAGE });
    this.top += add * PAGE;
    this.mergeAround(this.free_.length - 1);
    return this.free_.length - 1;
  }

  private mergeAround(i: number): void {
    const cur = this.free_[i]!;
    const next = this.free_[i + 1];
    if (next && cur.ptr + cur.size === next.ptr) {
      cur.size += next.size;
      this.free_.splice(i + 1, 1);
    }
    const prev = this.free_[i - 1];
    if (prev && prev.ptr + prev.size === cur.ptr) {
      prev.size += cur.size;
      this.free_.splice(i, 1);
    }
  }
}
