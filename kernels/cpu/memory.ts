/**
 * Where the CPU backends keep weights and activations. The reference backend uses the JS heap;
 * the WASM backend hands it regions of a WebAssembly memory instead, so the ops it does not
 * replace run on the very same bytes its SIMD kernels read.
 */

/** A zero-filled, 16-byte-aligned run of bytes. Views are fetched on each use: a growing WebAssembly memory replaces its buffer. */
export interface HostRegion {
  readonly byteLength: number;
  bytes(): Uint8Array;
  floats(): Float32Array;
}

export interface HostMemory {
  alloc(byteLength: number): HostRegion;
  free(r: HostRegion): void;
}

class JsRegion implements HostRegion {
  private readonly u8: Uint8Array;
  private readonly f32: Float32Array;
  constructor(byteLength: number) {
    this.u8 = new Uint8Array(byteLength);
    this.f32 = new Float32Array(this.u8.buffer, 0, byteLength >>> 2);
  }
  get byteLength(): number {
    return this.u8.byteLength;
  }
  bytes(): Uint8Array {
    return this.u8;
  }
  floats(): Float32Array {
    return this.f32;
  }
}

/** Plain ArrayBuffers, collected by the JS garbage collector. */
export const jsMemory: HostMemory = {
  alloc: (byteLength) => new JsRegion(byteLength),
  free: () => {},
};
