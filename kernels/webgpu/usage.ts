/** WebGPU's flag values, spelled out so Node needs no GPUBufferUsage / GPUMapMode globals. */
export const BufferUsage = {
  MAP_READ: 0x1,
  MAP_WRITE: 0x2,
  COPY_SRC: 0x4,
  COPY_DST: 0x8,
  UNIFORM: 0x40,
  STORAGE: 0x80,
  QUERY_RESOLVE: 0x200,
} as const;

export const MapMode = { READ: 0x1, WRITE: 0x2 } as const;
