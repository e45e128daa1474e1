/**
 * Compiled kernels and their bind groups, cached: a pipeline per kernel variant (its key), with an
 * explicit layout read from the WGSL, and bind groups per pipeline and buffers.
 */
import type { KernelSource } from '../wgsl/common.wgsl.ts';
import type { Slot } from './arena.ts';

export interface Pipeline {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  params: KernelSource['params'];
}

const BINDING = /@binding\((\d+)\)\s*var<(uniform|storage,\s*read_write|storage,\s*read)>/g;

/**
 * The bind group layout a kernel declares (an explicit layout, since 'auto' drops bindings a
 * variant does not use, and every variant of a kernel is called with the same bindings).
 */
function layoutEntries(code: string): GPUBindGroupLayoutEntry[] {
  return Array.from(code.matchAll(BINDING), (m) => ({
    binding: Number(m[1]),
    visibility: 0x4, // GPUShaderStage.COMPUTE
    // the parameters move through the arena from call to call: a dynamic offset lets one bind group serve them all
    buffer: m[2] === 'uniform' ? { type: 'uniform', hasDynamicOffset: true } : { type: m[2]!.endsWith('read_write') ? 'storage' : 'read-only-storage' },
  }));
}

/** Pipelines by key, compiled on first use. */
export class PipelineCache {
  private readonly pipelines = new Map<string, Pipeline>();
  private readonly device: GPUDevice;
  constructor(device: GPUDevice) {
    this.device = device;
  }

  get(key: string, make: () => KernelSource): Pipeline {
    let p = this.pipelines.get(key);
    if (!p) {
      const src = make();
      const module = this.device.createShaderModule({ code: src.code, label: key });
      const layout = this.device.createBindGroupLayout({ entries: layoutEntries(src.code), label: key });
      const pipeline = this.device.createComputePipeline({
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: 'main' },
        label: key,
      });
      p = { pipeline, layout, params: src.params };
      this.pipelines.set(key, p);
    }
    return p;
  }
}

/**
 * Bind groups by pipeline and buffers, built once and reused: decode binds the same weights, pooled
 * activations and arena chunks step after step, and creating a bind group costs more CPU than
 * recording the dispatch. Cleared when it grows past a bound (entries may name destroyed buffers).
 */
export class BindGroupCache {
  private readonly ids = new WeakMap<GPUBuffer, number>();
  private nextId = 0;
  private readonly groups = new Map<string, GPUBindGroup>();
  private readonly device: GPUDevice;
  constructor(device: GPUDevice) {
    this.device = device;
  }

  get(key: string, layout: GPUBindGroupLayout, uniform: Slot, buffers: GPUBufferBinding[]): GPUBindGroup {
    let k = `${key}|${this.id(uniform.buffer)}:${uniform.size}`;
    for (const b of buffers) k += `|${this.id(b.buffer)}:${b.offset ?? 0}:${b.size ?? -1}`;
    let g = this.groups.get(k);
    if (!g) {
      if (this.groups.size >= 4096) this.groups.clear();
      const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: uniform.buffer, offset: 0, size: uniform.size } }];
      buffers.forEach((b, i) => entries.push({ binding: i + 1, resource: b }));
      g = this.device.createBindGroup({ layout, entries, label: key });
      this.groups.set(k, g);
    }
    return g;
  }

  private id(b: GPUBuffer): number {
    let i = this.ids.get(b);
    if (i === undefined) this.ids.set(b, (i = this.nextId++));
    return i;
  }
}
