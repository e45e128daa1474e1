/**
 * The WebGPU backend: WGSL kernels (kernels/wgsl) behind the Backend interface, the same code in a
 * browser and in Node. Ops are recorded into one command encoder (one compute pass while possible)
 * and submitted when a result is read, `sync` is called, or many upload bytes are pending.
 */
import type { WeightDtype } from '../../manifests/index.ts';
import { zeroCounters, type Act, type AttentionParams, type Backend, type DeviceBytes, type ExpertSlabs, type RopeParams, type Weight } from '../backend.ts';
import { checkWeight, KernelError, scaleByteOffset, weightByteLength } from '../layout.ts';
import * as v from '../validate.ts';
import { ATTN_WG, attentionCombineSource, attentionSource } from '../wgsl/attention.wgsl.ts';
import type { KernelSource } from '../wgsl/common.wgsl.ts';
import { addBiasSource, binarySource, copySource, ELEMENTWISE_WG, embedSource, fillSource, gatherSource, scaledCopySource, scatterAddSource } from '../wgsl/elementwise.wgsl.ts';
import { GPU_FORMATS } from '../wgsl/formats/index.ts';
import { GEMM_TILE, gemmSource, gemvCanStageX, gemvFits, gemvSource, gemvUnits, gemvUnitWords, type GemvShape } from '../wgsl/matmul.wgsl.ts';
import { ropeSource, ROPE_WG } from '../wgsl/rope.wgsl.ts';
import { routeSource, ROUTE_WG, type RouteShape } from '../wgsl/routing.wgsl.ts';
import { argmaxSource, finiteRowsSource, rmsnormSource } from '../wgsl/rows.wgsl.ts';
import { selectExpertsSource } from '../wgsl/select.wgsl.ts';
import { Arena, type Slot } from './arena.ts';
import { BindGroupCache, PipelineCache, type Pipeline } from './pipelines.ts';
import { acquireDevice, type DeviceInfo } from './device.ts';
import { StagingPool } from './staging.ts';
import { BufferUsage, MapMode } from './usage.ts';

/** Decode batches up to this many rows use the gemv kernels. */
export const GEMV_MAX_M = 8;
/** Submit once this many upload bytes wait in staging, so the GPU copies while the CPU stages more. */
const UPLOAD_FLUSH_BYTES = 32 << 20;
const MAX_GRID = 65535;

class GpuBytes implements DeviceBytes {
  readonly buffer: GPUBuffer;
  readonly byteLength: number;
  released = false;
  constructor(buffer: GPUBuffer, byteLength: number) {
    this.buffer = buffer;
    this.byteLength = byteLength;
  }
}

interface Storage {
  buffer: GPUBuffer;
  size: number;
  freed: boolean;
}

class GpuAct implements Act {
  readonly rows: number;
  readonly cols: number;
  readonly storage: Storage;
  constructor(rows: number, cols: number, storage: Storage) {
    this.rows = rows;
    this.cols = cols;
    this.storage = storage;
  }
  get buffer(): GPUBuffer {
    if (this.storage.freed) throw new KernelError(`activation [${this.rows}, ${this.cols}] was used after freeAct`);
    return this.storage.buffer;
  }
}

class GpuWeight implements Weight {
  readonly src: DeviceBytes;
  readonly byteOffset: number;
  readonly dtype: WeightDtype;
  readonly rows: number;
  readonly cols: number;
  constructor(src: GpuBytes, byteOffset: number, dtype: WeightDtype, rows: number, cols: number) {
    this.src = src;
    this.byteOffset = byteOffset;
    this.dtype = dtype;
    this.rows = rows;
    this.cols = cols;
  }
}

/** A recorded dispatch's uniform slot and field order: where a later patch can find one of its parameters. */
interface Recorded {
  slot: Slot;
  params: KernelSource['params'];
}

/** The u32 word of the uniform buffer holding parameter `name` of a recorded dispatch. */
function paramWord(r: Recorded, name: string): number {
  const i = r.params.findIndex(([n]) => n === name);
  if (i < 0) throw new KernelError(`kernel has no parameter ${name} to patch`);
  return r.slot.offset / 4 + i;
}

const pow2Floor = (n: number): number => 2 ** Math.floor(Math.log2(Math.max(1, n)));

type GemvChooser = (dtype: WeightDtype, m: number, n: number, k: number) => Omit<GemvShape, 'dtype' | 'm'>;

/**
 * Default gemv shape. Single-row decode, from the H100 sweep of bench/kernels.ts over Mixtral and
 * DeepSeek-V3 shapes (bench/results/kernels-h100.json): narrow units for f16 and block formats, many
 * lanes per row (128 where the row has ≥ 2 units per lane) so that enough small loads are in
 * flight, rows per thread for block formats (their x vec4s serve 8 weights of each row), loads
 * unrolled; f32 takes 64 lanes of wide units, one row each. Rows per thread shrink while the grid
 * would have fewer than 256 workgroups. Batches (M > 1) keep wide units with ≤ 32 lanes and no
 * unrolling (one accumulator and x vec4 per batch row already fill the registers). On a CPU
 * rasteriser (SwiftShader) loops are not unrolled: compile time matters more there.
 */
export function defaultGemvShape(dtype: WeightDtype, m: number, n: number, k: number, software = false): Omit<GemvShape, 'dtype' | 'm'> {
  if (m > 1) {
    const tpr = Math.min(32, Math.max(4, pow2Floor(gemvUnits(dtype, false, k) / 4)));
    return { tpr, rpt: 1, stageX: false, narrow: false, unroll: 1 };
  }
  const narrow = dtype !== 'f32';
  const tpr = narrow ? Math.min(128, Math.max(4, pow2Floor(gemvUnits(dtype, true, k) / 2))) : Math.min(64, Math.max(4, pow2Floor(gemvUnits(dtype, false, k) / 4)));
  let rpt = GPU_FORMATS[dtype].gemvRows;
  while (rpt > 1 && n / ((256 / tpr) * rpt) < 256) rpt /= 2;
  const unroll = software ? 1 : dtype === 'f16' ? 4 : 2;
  return { tpr, rpt, stageX: false, narrow, unroll };
}

/** The Backend plus what benchmarks and tooling need from the WebGPU one. */
export interface WebGpuBackend extends Backend {
  readonly device: GPUDevice;
  readonly info: DeviceInfo;
  /** GPU nanoseconds of the ops `record` queues (timestamp queries), or null without timestamp-query. */
  timeGpu(record: () => void): Promise<number | null>;
  /** Submits recorded work without waiting. */
  flush(): void;
  /** Overrides the gemv shape heuristic (benchmark sweeps); null restores it. */
  setGemvChooser(choose: GemvChooser | null): void;
  /** Whether gemv reductions use subgroup shuffles (when the device has them); for comparisons. */
  setSubgroupReduction(on: boolean): void;
  /** Uploads with queue.writeBuffer instead of staging (for comparison). */
  uploadWithWriteBuffer(bytes: Uint8Array): DeviceBytes;
  destroy(): void;
}

const roundUp = (n: number, a: number): number => Math.ceil(n / a) * a;


/**
 * Key splits for attention: 1 when there are enough (row, head) pairs to fill a GPU or the cache
 * is short; otherwise enough splits for ~1024 workgroups, each covering at least 256 keys.
 */
export function attentionSplits(pairs: number, maxKeys: number): number {
  if (pairs >= 256 || maxKeys < 512) return 1;
  return Math.max(1, Math.min(Math.ceil(1024 / pairs), Math.floor(maxKeys / 256)));
}

function asAct(a: Act): GpuAct {
  if (!(a instanceof GpuAct)) throw new KernelError('activation does not belong to this WebGPU backend');
  return a;
}

function asWeight(w: Weight): GpuWeight {
  if (!(w instanceof GpuWeight)) throw new KernelError('weight does not belong to this WebGPU backend');
  if ((w.src as GpuBytes).released) throw new KernelError('weight bytes were released');
  return w;
}

export async function createWebGpuBackend(opts: { device?: GPUDevice } = {}): Promise<WebGpuBackend> {
  const info: DeviceInfo = opts.device
    ? {
        device: opts.device,
        subgroups: opts.device.features.has('subgroups'),
        timestamps: opts.device.features.has('timestamp-query'),
        description: 'caller-provided device',
        software: false,
        subgroupSize: null,
      }
    : await acquireDevice();
  const device = info.device;
  const limits = device.limits;
  let deviceError: string | null = null;
  device.addEventListener('uncapturederror', (e) => {
    deviceError ??= (e as GPUUncapturedErrorEvent).error.message;
  });
  void device.lost.then((l) => {
    deviceError ??= `device lost: ${l.message}`;
  });

  const arena = new Arena(device);
  // parameters of the kernels that patch other kernels' parameters (never the buffer they patch)
  const patchArena = new Arena(device);
  const staging = new StagingPool(device);
  const pipelines = new PipelineCache(device);
  const pipelineFor = (key: string, make: () => KernelSource): Pipeline => pipelines.get(key, make);
  const bindGroups = new BindGroupCache(device);
  const pool = new Map<number, GPUBuffer[]>();
  let pooledBytes = 0;
  let liveActBytes = 0;
  let uploadedBytes = 0;
  /** Dispatches, read-backs and submissions; upload bytes are the arena's plus `stagedBytes`. */
  const counts = zeroCounters();
  let stagedBytes = 0;
  let encoder: GPUCommandEncoder | null = null;
  let pass: GPUComputePassEncoder | null = null;
  let timing: { querySet: GPUQuerySet; began: boolean } | null = null;
  // staged-x gemv needs ~32 KiB of workgroup memory (WebGPU's default limit is 16 KiB)
  const software = info.software || limits.maxComputeWorkgroupStorageSize < 32768;
  const defaultChooser: GemvChooser = (dtype, m, n, k) => defaultGemvShape(dtype, m, n, k, software);
  let chooseGemv: GemvChooser = defaultChooser;
  let useSubgroups = info.subgroupSize !== null;

  function throwIfDeviceError(): void {
    if (deviceError) throw new KernelError(`WebGPU error: ${deviceError}`);
  }

  function getPass(): GPUComputePassEncoder {
    if (!pass) {
      encoder ??= device.createCommandEncoder();
      const desc: GPUComputePassDescriptor = {};
      if (timing) {
        if (timing.began) throw new KernelError('timeGpu: the timed ops need more than one compute pass');
        timing.began = true;
        desc.timestampWrites = { querySet: timing.querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 };
      }
      pass = encoder.beginComputePass(desc);
    }
    return pass;
  }

  function getEncoder(): GPUCommandEncoder {
    if (pass) {
      pass.end();
      pass = null;
    }
    encoder ??= device.createCommandEncoder();
    return encoder;
  }

  /**
   * Buffers released while commands that touch them (an upload's copy, a kernel) are still being
   * recorded: destroyed only once those commands are submitted, which WebGPU allows.
   */
  let releasedBeforeSubmit: GPUBuffer[] = [];
  /** Read-backs recorded but left for the next submission to carry (see lazyReadBack). */
  let lazyMaps: Array<() => void> = [];

  function flush(): void {
    throwIfDeviceError();
    if (!encoder && staging.pending === 0) {
      destroyReleased();
      startLazyMaps();
      return;
    }
    const enc = getEncoder();
    encoder = null;
    const arenaDone = arena.beforeSubmit(device.queue);
    const patchDone = patchArena.beforeSubmit(device.queue);
    const stagingDone = staging.beforeSubmit();
    device.queue.submit([enc.finish()]);
    counts.submits++;
    destroyReleased();
    startLazyMaps();
    // Recycle from a fresh task, not from inside the runtime's completion callback (Dawn in Node
    // runs promise continuations while it processes events; re-mapping buffers there is re-entrant).
    void device.queue.onSubmittedWorkDone().then(() =>
      setTimeout(() => {
        arenaDone();
        patchDone();
        stagingDone();
      }, 0),
    );
  }

  function startLazyMaps(): void {
    const maps = lazyMaps;
    lazyMaps = [];
    for (const m of maps) m();
  }

  function destroyReleased(): void {
    for (const b of releasedBeforeSubmit) b.destroy();
    releasedBeforeSubmit = [];
  }



  /** Records one kernel; returns where its parameters live (null when the grid is empty and nothing ran). */
  function dispatch(key: string, make: () => KernelSource, buffers: GPUBufferBinding[], params: Record<string, number>, grid: [number, number, number]): Recorded | null {
    if (grid[0] === 0 || grid[1] === 0 || grid[2] === 0) return null;
    const p = pipelineFor(key, make);
    const raw = new ArrayBuffer(Math.max(16, roundUp(p.params.length * 4, 16)));
    const u32 = new Uint32Array(raw);
    const f32 = new Float32Array(raw);
    p.params.forEach(([name, type], i) => {
      const value = params[name];
      if (value === undefined) throw new KernelError(`kernel ${key}: parameter ${name} missing`);
      if (type === 'f32') f32[i] = value;
      else u32[i] = value;
    });
    const slot = arena.alloc(u32);
    const bindGroup = bindGroups.get(key, p.layout, slot, buffers);
    const ps = getPass();
    counts.dispatches++;
    ps.setPipeline(p.pipeline);
    ps.setBindGroup(0, bindGroup, [slot.offset]);
    ps.dispatchWorkgroups(grid[0], grid[1], grid[2]);
    return { slot, params: p.params };
  }

  /** A 2-D grid covering `groups` workgroups, for kernels that linearise the workgroup id. */
  function linearGrid(groups: number): [number, number, number] {
    if (groups <= MAX_GRID) return [groups, 1, 1];
    return [MAX_GRID, Math.ceil(groups / MAX_GRID), 1];
  }

  function newStorage(rows: number, cols: number, zeroed = true): Storage {
    const size = roundUp(Math.max(rows * cols * 4, 16), 256);
    if (size > limits.maxStorageBufferBindingSize) {
      throw new KernelError(`activation [${rows}, ${cols}] needs ${size} bytes; this device binds at most ${limits.maxStorageBufferBindingSize}`);
    }
    liveActBytes += size;
    const free = pool.get(size);
    const reused = free?.pop();
    if (reused) {
      pooledBytes -= size;
      const s = { buffer: reused, size, freed: false };
      if (zeroed) fill(s, 0);
      return s;
    }
    const buffer = device.createBuffer({ size, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST });
    return { buffer, size, freed: false };
  }

  function releaseStorage(s: Storage): void {
    if (s.freed) return;
    s.freed = true;
    liveActBytes -= s.size;
    const list = pool.get(s.size) ?? [];
    list.push(s.buffer);
    pool.set(s.size, list);
    pooledBytes += s.size;
  }

  function fill(s: Storage, value: number): void {
    const count = s.size / 4;
    dispatch('fill', fillSource, [{ buffer: s.buffer }], { count, value }, linearGrid(Math.ceil(count / ELEMENTWISE_WG)));
  }

  const whole = (a: GpuAct): GPUBufferBinding => ({ buffer: a.buffer });

  /** Runs `body` with an output that aliases none of `inputs`, copying back to `out` when a temporary was needed. */
  function withDistinctOut(out: GpuAct, inputs: GpuAct[], keepContents: boolean, body: (o: GpuAct) => void): void {
    if (!inputs.some((i) => i.storage === out.storage)) {
      body(out);
      return;
    }
    const tmp = new GpuAct(out.rows, out.cols, newStorage(out.rows, out.cols));
    if (keepContents) copyFlat(out, tmp);
    body(tmp);
    copyFlat(tmp, out);
    releaseStorage(tmp.storage);
  }

  function copyFlat(src: GpuAct, dst: GpuAct): void {
    const count = src.rows * src.cols;
    dispatch('copy', () => copySource(false), [whole(dst), whole(src)], { count, cols: Math.max(count, 1), srcStride: 0, srcBase: 0, dstStride: 0, dstBase: 0 }, linearGrid(Math.ceil(count / ELEMENTWISE_WG)));
  }

  function weightBinding(w: GpuWeight): { binding: GPUBufferBinding; wB: number; wS: number } {
    const buf = (w.src as GpuBytes).buffer;
    const base = w.byteOffset - (w.byteOffset % 256);
    const wB = (w.byteOffset - base) / 4;
    const size = Math.min(roundUp(w.byteOffset - base + weightByteLength(w.dtype, w.rows, w.cols), 16), buf.size - base);
    if (size > limits.maxStorageBufferBindingSize) {
      throw new KernelError(`${w.dtype} weight ${w.rows}×${w.cols} is ${size} bytes; this device binds at most ${limits.maxStorageBufferBindingSize}`);
    }
    const wS = wB + scaleByteOffset(w.dtype, w.rows, w.cols) / 4;
    return { binding: { buffer: buf, offset: base, size }, wB, wS };
  }

  /** A slab weight bound whole (every slot in reach), with its slot's offsets counted from the slab's start. */
  function slabBinding(w: GpuWeight): { binding: GPUBufferBinding; wB: number; wS: number } {
    const buf = (w.src as GpuBytes).buffer;
    if (buf.size > limits.maxStorageBufferBindingSize) {
      throw new KernelError(`an expert slab of ${buf.size} bytes exceeds this device's largest binding (${limits.maxStorageBufferBindingSize})`);
    }
    const wB = w.byteOffset / 4;
    const wS = wB + scaleByteOffset(w.dtype, w.rows, w.cols) / 4;
    return { binding: { buffer: buf }, wB, wS };
  }

  /**
   * One token's routed experts without a read-back: a one-thread kernel orders the picks and patches
   * the slab offsets of the expert GEMVs recorded after it (see select.wgsl.ts), then each pick runs
   * gate, up, SwiGLU, down and a scatter-add of its weight, the same kernels the CPU-routed path
   * records for one expert.
   */
  function routedExpertsImpl(x: GpuAct, routing: GpuAct, slabs: ExpertSlabs, out: GpuAct, accumulate: boolean): void {
    const k = routing.cols / 2;
    const slots = slabs.gate.length;
    const [g0, u0, d0] = [asWeight(slabs.gate[0]!), asWeight(slabs.up[0]!), asWeight(slabs.down[0]!)];
    const stride = (ws: readonly Weight[]) => (ws.length > 1 ? ws[1]!.byteOffset - ws[0]!.byteOffset : 0);
    const sel = newStorage(1, 2 * k + 1, false);
    // every patched uniform must sit in one arena chunk: five dispatches per pick, one slot each
    const target = arena.reserve(k * 5 * 256);
    const entries = k * 3 * 2;
    const table = patchArena.allocWords(entries * 4);
    const params = patchArena.alloc(new Uint32Array([entries, slots - 1, table.slot.offset / 4, 0]));
    const key = `select-experts:${k}`;
    const p = pipelineFor(key, () => selectExpertsSource(k));
    const bindGroup = bindGroups.get(key, p.layout, params, [
      { buffer: target },
      { buffer: sel.buffer },
      { buffer: routing.buffer },
      { buffer: table.slot.buffer },
    ]);
    const ps = getPass();
    counts.dispatches++;
    ps.setPipeline(p.pipeline);
    ps.setBindGroup(0, bindGroup, [params.offset]);
    ps.dispatchWorkgroups(1);

    let e = 0;
    const patch = (m: ReturnType<typeof matmulImpl>, w: GpuWeight, strideBytes: number, j: number) => {
      if (!m.rec || m.rec.slot.buffer !== target) throw new KernelError('routedExperts: an expert GEMV\'s parameters left the patched uniform chunk');
      const b = slabBinding(w);
      const quant = w.dtype === 'q8_0' || w.dtype === 'q4_0';
      table.words.set([paramWord(m.rec, m.base), j, b.wB / m.unitWords, strideBytes / 4 / m.unitWords], 4 * e++);
      // f32/f16 have no scales: the second entry re-writes the offset with the same value
      table.words.set(quant ? [paramWord(m.rec, 'wS'), j, b.wS, strideBytes / 4] : [paramWord(m.rec, m.base), j, b.wB / m.unitWords, strideBytes / 4 / m.unitWords], 4 * e++);
    };
    const inter = g0.rows;
    const temps: Storage[] = [];
    const temp = (cols: number) => {
      const st = newStorage(1, cols, false);
      temps.push(st);
      return new GpuAct(1, cols, st);
    };
    for (let j = 0; j < k; j++) {
      const g = temp(inter);
      const u = temp(inter);
      const a = temp(inter);
      const y = temp(out.cols);
      patch(matmulImpl(x, g0, g, false, 1, slabBinding(g0)), g0, stride(slabs.gate), j);
      patch(matmulImpl(x, u0, u, false, 1, slabBinding(u0)), u0, stride(slabs.up), j);
      binary('swiglu', g, u, a);
      patch(matmulImpl(a, d0, y, false, 1, slabBinding(d0)), d0, stride(slabs.down), j);
      const grid = linearGrid(Math.ceil(out.cols / ELEMENTWISE_WG));
      const bindings = [whole(out), whole(y), { buffer: sel.buffer }];
      // the first pick writes scale · y, what adding it to zeros gives
      if (j === 0 && !accumulate) dispatch('scaledCopy', scaledCopySource, bindings, { count: out.cols, scaleOff: k }, grid);
      else dispatch('scatterAdd', scatterAddSource, bindings, { count: out.cols, cols: out.cols, rowsOff: 2 * k, scaleOff: k + j }, grid);
    }
    for (const st of temps) releaseStorage(st);
    releaseStorage(sel);
  }

  function uploadBuffer(bytes: Uint8Array, viaWriteBuffer: boolean): GpuBytes {
    const size = roundUp(Math.max(bytes.byteLength, 16), 16);
    if (size > limits.maxBufferSize) throw new KernelError(`upload of ${bytes.byteLength} bytes exceeds this device's maxBufferSize ${limits.maxBufferSize}`);
    const buffer = device.createBuffer({ size, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC });
    uploadedBytes += size;
    stagedBytes += bytes.byteLength;
    if (viaWriteBuffer) {
      flush();
      const padded = bytes.byteLength % 4 === 0 ? bytes : (() => { const c = new Uint8Array(roundUp(bytes.byteLength, 4)); c.set(bytes); return c; })();
      device.queue.writeBuffer(buffer, 0, padded.buffer, padded.byteOffset, padded.byteLength);
    } else {
      const copies = staging.stage(bytes);
      const enc = getEncoder();
      for (const c of copies) enc.copyBufferToBuffer(c.src, c.srcOffset, buffer, c.dstOffset, c.size);
      if (staging.pending >= UPLOAD_FLUSH_BYTES) flush();
    }
    return new GpuBytes(buffer, bytes.byteLength);
  }

  /** Records x · wᵀ; returns the dispatch and the units its weight offset `wBase`/`wB` counts in (words per unit). */
  function matmulImpl(x: GpuAct, w: GpuWeight, out: GpuAct, accumulate: boolean, heads: number, wb = weightBinding(w)): { rec: Recorded | null; base: 'wBase' | 'wB'; unitWords: number } {
    const n = w.rows / heads;
    const k = w.cols;
    const m = x.rows;
    const base = { M: m, N: n, xStride: x.cols, xHead: heads > 1 ? k : 0, outStride: out.cols, outHead: heads > 1 ? n : 0, accumulate: accumulate ? 1 : 0 };
    if (m <= GEMV_MAX_M && gemvFits(w.dtype, k, x.cols, wb.wB)) {
      const { tpr, rpt, stageX, narrow = false, unroll = 1 } = chooseGemv(w.dtype, m, n, k);
      const staged = stageX && gemvCanStageX(w.dtype, m);
      const shape: GemvShape = { dtype: w.dtype, m, tpr, rpt, stageX: staged, narrow: narrow && !staged, unroll: staged ? 1 : unroll, subgroup: useSubgroups ? (info.subgroupSize ?? 1) : 1 };
      const rowsPerGroup = (256 / tpr) * rpt;
      const rec = dispatch(
        `gemv:${w.dtype}:${m}:${tpr}:${rpt}:${shape.stageX}:${shape.narrow}:${shape.unroll}:${shape.subgroup}`,
        () => gemvSource(shape),
        [whole(out), wb.binding, wb.binding, whole(x)],
        { ...base, units: gemvUnits(w.dtype, shape.narrow!, k), wBase: wb.wB / gemvUnitWords(w.dtype, shape.narrow!), wS: wb.wS, xStride4: x.cols / 4, xHead4: heads > 1 ? k / 4 : 0 },
        [Math.ceil(n / rowsPerGroup), heads, 1],
      );
      return { rec, base: 'wBase', unitWords: gemvUnitWords(w.dtype, shape.narrow!) };
    }
    const rec = dispatch(`gemm:${w.dtype}`, () => gemmSource(w.dtype), [whole(out), wb.binding, whole(x)], { ...base, wK: k, wB: wb.wB, wS: wb.wS }, [Math.ceil(n / GEMM_TILE), Math.ceil(m / GEMM_TILE), heads]);
    return { rec, base: 'wB', unitWords: 1 };
  }

  /**
   * Read-back buffers by size, reused: creating a MAP_READ buffer costs Dawn more than the small
   * read it serves (about 0.15 ms on an H100 host), and decode reads back every layer.
   */
  const readBuffers = new Map<number, GPUBuffer[]>();
  const READ_BUFFERS_PER_SIZE = 8;

  /** One mapped buffer receiving `size` bytes of each source, back to back (4-byte aligned): one read-back. */
  function readBuffer(srcs: ReadonlyArray<{ src: GPUBuffer; size: number }>): { rb: GPUBuffer; bytes: number } {
    const bytes = srcs.reduce((sum, r) => sum + roundUp(Math.max(r.size, 4), 4), 0);
    const rb = readBuffers.get(bytes)?.pop() ?? device.createBuffer({ size: bytes, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    const enc = getEncoder();
    let at = 0;
    for (const r of srcs) {
      const n = roundUp(Math.max(r.size, 4), 4);
      enc.copyBufferToBuffer(r.src, 0, rb, at, n);
      at += n;
    }
    counts.readBacks++;
    return { rb, bytes };
  }

  /** Copies out the mapped data and unmaps the buffer back into the pool. */
  function takeMapped(rb: GPUBuffer, bytes: number, size: number): ArrayBuffer {
    const data = rb.getMappedRange().slice(0, size);
    rb.unmap();
    const list = readBuffers.get(bytes) ?? [];
    if (list.length < READ_BUFFERS_PER_SIZE) {
      list.push(rb);
      readBuffers.set(bytes, list);
    } else {
      rb.destroy();
    }
    return data;
  }

  async function readBack(src: GPUBuffer, size: number): Promise<ArrayBuffer> {
    const data = await readBackMany([{ src, size }]);
    return data.byteLength === size ? data : data.slice(0, size);
  }

  async function readBackMany(srcs: ReadonlyArray<{ src: GPUBuffer; size: number }>): Promise<ArrayBuffer> {
    const { rb, bytes } = readBuffer(srcs);
    const size = bytes;
    flush();
    try {
      await rb.mapAsync(MapMode.READ);
    } catch (err) {
      rb.destroy();
      throwIfDeviceError();
      throw new KernelError('reading back from the GPU failed', { cause: err });
    }
    const data = takeMapped(rb, bytes, size);
    throwIfDeviceError();
    return data;
  }

  /**
   * A read-back that does not submit by itself: it rides on the next submission (the engine's
   * next router read), so a check that nobody waits for at once costs no round trip of its own.
   * A task later, if nothing has submitted yet, it submits on its own.
   */
  function lazyReadBack(src: GPUBuffer, size: number): Promise<ArrayBuffer> {
    const { rb, bytes } = readBuffer([{ src, size }]);
    return new Promise<ArrayBuffer>((resolve, reject) => {
      let started = false;
      lazyMaps.push(() => {
        started = true;
        rb.mapAsync(MapMode.READ).then(
          () => resolve(takeMapped(rb, bytes, size)),
          (err: unknown) => {
            rb.destroy();
            reject(new KernelError(`reading back from the GPU failed${deviceError ? `: ${deviceError}` : ''}`, { cause: err }));
          },
        );
      });
      setTimeout(() => {
        if (!started) flush();
      }, 0);
    });
  }

  /** A per-row u32 result of a one-workgroup-per-row kernel, read back. */
  async function rowsKernel(key: string, make: () => KernelSource, x: GpuAct, lazy = false): Promise<Uint32Array> {
    const res = newStorage(x.rows, 1);
    dispatch(key, make, [{ buffer: res.buffer }, whole(x)], { rows: x.rows, cols: x.cols }, linearGrid(x.rows));
    const pending = lazy ? lazyReadBack(res.buffer, x.rows * 4) : readBack(res.buffer, x.rows * 4);
    releaseStorage(res);
    return new Uint32Array(await pending);
  }

  /** A per-row result written as an f32 into column `col` of out. */
  function rowsInto(key: string, make: () => KernelSource, x: GpuAct, out: GpuAct, col: number): void {
    withDistinctOut(out, [x], true, (o) => dispatch(key, make, [whole(o), whole(x)], { rows: x.rows, cols: x.cols, outStride: out.cols, outCol: col }, linearGrid(x.rows)));
  }

  const backend: WebGpuBackend = {
    name: 'webgpu',
    device,
    info,
    counters: () => ({ ...counts, uploadedBytes: stagedBytes + arena.written + patchArena.written }),

    upload(bytes) {
      return uploadBuffer(bytes, false);
    },
    uploadWithWriteBuffer(bytes) {
      return uploadBuffer(bytes, true);
    },
    releaseBytes(b) {
      if (!(b instanceof GpuBytes)) throw new KernelError('bytes do not belong to this WebGPU backend');
      if (b.released) return;
      b.released = true;
      uploadedBytes -= b.buffer.size;
      if (encoder || staging.pending > 0) releasedBeforeSubmit.push(b.buffer);
      else b.buffer.destroy();
    },
    weight(src, byteOffset, dtype, rows, cols) {
      if (!(src instanceof GpuBytes)) throw new KernelError('weight bytes do not belong to this WebGPU backend');
      checkWeight(src.byteLength, byteOffset, dtype, rows, cols);
      return new GpuWeight(src, byteOffset, dtype, rows, cols);
    },

    act(rows, cols, zeroed = true) {
      v.checkActShape(rows, cols);
      return new GpuAct(rows, cols, newStorage(rows, cols, zeroed));
    },
    view(a, rows, cols) {
      const g = asAct(a);
      v.checkActShape(rows, cols);
      if (rows * cols !== g.rows * g.cols) throw new KernelError(`view [${rows}, ${cols}] of [${g.rows}, ${g.cols}] changes the element count`);
      return new GpuAct(rows, cols, g.storage);
    },
    freeAct(a) {
      releaseStorage(asAct(a).storage);
    },
    write(a, data, rowOffset = 0) {
      const g = asAct(a);
      v.checkWrite(g, data.length, rowOffset);
      if (data.length === 0) return;
      const slot = arena.alloc(data);
      getEncoder().copyBufferToBuffer(slot.buffer, slot.offset, g.buffer, rowOffset * g.cols * 4, data.length * 4);
    },
    async read(a) {
      const g = asAct(a);
      return new Float32Array(await readBack(g.buffer, g.rows * g.cols * 4));
    },
    async readMany(acts) {
      const gs = acts.map(asAct);
      const data = await readBackMany(gs.map((g) => ({ src: g.buffer, size: g.rows * g.cols * 4 })));
      let at = 0;
      return gs.map((g) => {
        const n = g.rows * g.cols;
        const out = new Float32Array(data, at, n);
        at += Math.max(n, 1) * 4;
        return out;
      });
    },
    bytesInUse() {
      return uploadedBytes + liveActBytes + pooledBytes + arena.bytes + patchArena.bytes + staging.bytes;
    },

    embed(ids, table, out) {
      v.checkEmbed(ids, table, out);
      const w = asWeight(table);
      const o = asAct(out);
      const wb = weightBinding(w);
      const slot = arena.alloc(ids);
      const count = ids.length * w.cols;
      dispatch(`embed:${w.dtype}`, () => embedSource(w.dtype), [whole(o), wb.binding, { buffer: slot.buffer }], { count, wK: w.cols, wB: wb.wB, wS: wb.wS, idsOff: slot.offset / 4 }, linearGrid(Math.ceil(count / ELEMENTWISE_WG)));
    },
    matmul(x, w, out, accumulate = false) {
      v.checkMatmul(x, w, out);
      const gx = asAct(x);
      withDistinctOut(asAct(out), [gx], accumulate, (o) => matmulImpl(gx, asWeight(w), o, accumulate, 1));
    },
    matmulHeads(x, w, out, heads) {
      v.checkMatmulHeads(x, w, out, heads);
      const gx = asAct(x);
      withDistinctOut(asAct(out), [gx], false, (o) => matmulImpl(gx, asWeight(w), o, false, heads));
    },
    rmsnorm(x, w, out, eps) {
      v.checkRmsnorm(x, w, out);
      const gx = asAct(x);
      const o = asAct(out);
      const gw = asWeight(w);
      const wb = weightBinding(gw);
      const inPlace = gx.storage === o.storage;
      const rows = (x.rows * x.cols) / w.cols;
      const buffers = inPlace ? [whole(o), wb.binding] : [whole(o), wb.binding, whole(gx)];
      dispatch(`rmsnorm:${gw.dtype}:${inPlace}`, () => rmsnormSource(gw.dtype, inPlace), buffers, { rows, wK: w.cols, wB: wb.wB, wS: wb.wS, eps }, linearGrid(rows));
    },
    rope(x, p: RopeParams) {
      v.checkRope(x, p);
      const g = asAct(x);
      const slot = arena.alloc(v.ropeInvFreq(p));
      const half = p.ropeDim / 2;
      const count = x.rows * p.heads * half;
      dispatch(
        'rope',
        ropeSource,
        [whole(g), { buffer: slot.buffer }],
        { count, heads: p.heads, half, cols: x.cols, headStride: p.headStride, ropeOffset: p.ropeOffset, startPos: p.startPos, interleaved: p.interleaved ? 1 : 0, freqOff: slot.offset / 4, scaling: p.scaling ?? 1 },
        linearGrid(Math.ceil(count / ROPE_WG)),
      );
    },
    swiglu(gate, up, out) {
      v.checkSameShape('swiglu', gate, up, out);
      binary('swiglu', asAct(gate), asAct(up), asAct(out));
    },
    swigluClamped(gate, up, out, alpha, limit) {
      v.checkSameShape('swigluClamped', gate, up, out);
      binary('swigluClamped', asAct(gate), asAct(up), asAct(out), { alpha, limit });
    },
    addBias(x, bias, out) {
      v.checkAddBias(x, bias, out);
      const gx = asAct(x);
      const o = asAct(out);
      const wb = weightBinding(asWeight(bias));
      const inPlace = gx.storage === o.storage;
      const count = x.rows * x.cols;
      const buffers = inPlace ? [whole(o), wb.binding] : [whole(o), wb.binding, whole(gx)];
      dispatch(`addBias:${inPlace}`, () => addBiasSource(inPlace), buffers, { count, cols: x.cols, wB: wb.wB }, linearGrid(Math.ceil(count / ELEMENTWISE_WG)));
    },
    add(a, b, out) {
      v.checkSameShape('add', a, b, out);
      binary('add', asAct(a), asAct(b), asAct(out));
    },
    copy(src, srcRow, srcCol, dst, dstRow, dstCol, rows, cols) {
      v.checkCopy(src, srcRow, srcCol, dst, dstRow, dstCol, rows, cols);
      const s = asAct(src);
      const d = asAct(dst);
      const same = s.storage === d.storage;
      const count = rows * cols;
      if (count === 0) return;
      dispatch(
        `copy:${same}`,
        () => copySource(same),
        same ? [whole(d)] : [whole(d), whole(s)],
        { count, cols, srcStride: s.cols, srcBase: srcRow * s.cols + srcCol, dstStride: d.cols, dstBase: dstRow * d.cols + dstCol },
        linearGrid(Math.ceil(count / ELEMENTWISE_WG)),
      );
    },
    gather(x, rows, out) {
      v.checkGather(x, rows, out);
      const gx = asAct(x);
      const slot = arena.alloc(rows);
      const count = rows.length * x.cols;
      withDistinctOut(asAct(out), [gx], false, (o) =>
        dispatch('gather', gatherSource, [whole(o), whole(gx), { buffer: slot.buffer }], { count, cols: x.cols, rowsOff: slot.offset / 4 }, linearGrid(Math.ceil(count / ELEMENTWISE_WG))),
      );
    },
    scatterAdd(y, rows, scale, out) {
      v.checkScatterAdd(y, rows, scale, out);
      const gy = asAct(y);
      const meta = new Uint32Array(rows.length * 2);
      meta.set(rows);
      meta.set(new Uint32Array(scale.buffer, scale.byteOffset, scale.length), rows.length);
      const slot = arena.alloc(meta);
      const count = rows.length * y.cols;
      withDistinctOut(asAct(out), [gy], true, (o) =>
        dispatch('scatterAdd', scatterAddSource, [whole(o), whole(gy), { buffer: slot.buffer }], { count, cols: y.cols, rowsOff: slot.offset / 4, scaleOff: slot.offset / 4 + rows.length }, linearGrid(Math.ceil(count / ELEMENTWISE_WG))),
      );
    },
    attention(q, k, vc, out, p: AttentionParams) {
      v.checkAttention(q, k, vc, out, p);
      const gq = asAct(q);
      const gk = asAct(k);
      const gv = asAct(vc);
      const vec4K = p.dk % 4 === 0 && k.cols % 4 === 0;
      const pairs = q.rows * p.heads;
      // with a window, no query of this call sees a position before kBase
      const kBase = p.window === undefined ? 0 : Math.max(0, p.startPos - p.window + 1);
      const span = p.startPos + q.rows - kBase;
      const splits = attentionSplits(pairs, span);
      const chunk = roundUp(Math.ceil(span / splits), ATTN_WG);
      const sinks = p.sinks ? weightBinding(asWeight(p.sinks)) : null;
      const params = {
        M: q.rows, heads: p.heads, group: p.heads / p.kvHeads, startPos: p.startPos, qStride: q.cols, kStride: k.cols, vStride: vc.cols,
        vOff: p.vColOffset ?? 0, outStride: out.cols, window: p.window ?? 0, rows: p.cacheRows ?? k.rows, kBase, scale: p.scale, splits, chunk,
        sinkOff: sinks?.wB ?? 0,
      };
      const extra = sinks ? [sinks.binding] : [];
      const variant = `${p.dk}:${p.dv}:${vec4K}:${sinks !== null}`;
      withDistinctOut(asAct(out), [gq, gk, gv], false, (o) => {
        if (splits === 1) {
          dispatch(`attention:${variant}`, () => attentionSource(p.dk, p.dv, vec4K, false, sinks !== null), [whole(o), whole(gq), whole(gk), whole(gv), ...extra], params, linearGrid(pairs));
          return;
        }
        const part = newStorage(pairs * splits, p.dv + 2);
        dispatch(`attention-split:${variant}`, () => attentionSource(p.dk, p.dv, vec4K, true, sinks !== null), [{ buffer: part.buffer }, whole(gq), whole(gk), whole(gv), ...extra], params, linearGrid(pairs * splits));
        const count = pairs * p.dv;
        dispatch('attention-combine', attentionCombineSource, [whole(o), { buffer: part.buffer }], { count, heads: p.heads, splits, dv: p.dv, outStride: out.cols }, linearGrid(Math.ceil(count / ATTN_WG)));
        releaseStorage(part);
      });
    },
    route(logits, p, bias, out) {
      v.checkRoute(logits, p, bias, out);
      const gl = asAct(logits);
      const group = p.router === 'sigmoid_group_limited';
      const shape: RouteShape = { kind: p.router, numExperts: p.numExperts, k: p.topK, nGroup: group ? p.nGroup : 1, topkGroup: group ? p.topkGroup : 1, bias: bias !== null };
      const buffers = [whole(asAct(out)), whole(gl)];
      const bb = bias ? weightBinding(asWeight(bias)) : null;
      if (bb) buffers.push(bb.binding);
      withDistinctOut(asAct(out), [gl], false, (o) => {
        buffers[0] = whole(o);
        dispatch(
          `route:${shape.kind}:${shape.numExperts}:${shape.k}:${shape.nGroup}:${shape.topkGroup}:${shape.bias}`,
          () => routeSource(shape),
          buffers,
          { tokens: logits.rows, norm: p.normTopkProb ? 1 : 0, scaling: group ? p.routedScalingFactor : 1, biasOff: bb?.wB ?? 0 },
          linearGrid(Math.ceil(logits.rows / ROUTE_WG)),
        );
      });
    },
    routedExperts(x, routing, slabs, out, accumulate = true) {
      v.checkRoutedExperts(x, routing, slabs, out);
      const gx = asAct(x);
      const gr = asAct(routing);
      withDistinctOut(asAct(out), [gx, gr], accumulate, (o) => routedExpertsImpl(gx, gr, slabs, o, accumulate));
    },
    argmaxTo(x, out, col) {
      v.checkRowsTo('argmaxTo', x, out, col);
      rowsInto('argmax-into', () => argmaxSource(true), asAct(x), asAct(out), col);
    },
    finiteTo(x, out, col) {
      v.checkRowsTo('finiteTo', x, out, col);
      rowsInto('finite-into', () => finiteRowsSource(true), asAct(x), asAct(out), col);
    },
    argmax(x) {
      return rowsKernel('argmax', argmaxSource, asAct(x));
    },
    async finiteRows(x) {
      return Array.from(await rowsKernel('finite', finiteRowsSource, asAct(x), true), (f) => f === 1);
    },
    async sync() {
      flush();
      await device.queue.onSubmittedWorkDone();
      throwIfDeviceError();
    },

    flush,
    setSubgroupReduction(on) {
      useSubgroups = on && info.subgroupSize !== null;
    },
    setGemvChooser(choose) {
      chooseGemv = choose ?? defaultChooser;
    },
    async timeGpu(record) {
      if (!info.timestamps) {
        record();
        return null;
      }
      getEncoder();
      const querySet = device.createQuerySet({ type: 'timestamp', count: 2 });
      timing = { querySet, began: false };
      try {
        record();
      } finally {
        timing = null;
      }
      const resolve = device.createBuffer({ size: 16, usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC });
      getEncoder().resolveQuerySet(querySet, 0, 2, resolve, 0);
      const data = new BigUint64Array(await readBack(resolve, 16));
      resolve.destroy();
      querySet.destroy();
      return Number(data[1]! - data[0]!);
    },
    destroy() {
      staging.destroy();
      device.destroy();
    },
  };

  function binary(op: 'add' | 'swiglu' | 'swigluClamped', a: GpuAct, b: GpuAct, out: GpuAct, extra: Record<string, number> = {}): void {
    const aliasA = a.storage === out.storage;
    const aliasB = b.storage === out.storage;
    const alias = aliasA && aliasB ? 'ab' : aliasA ? 'a' : aliasB ? 'b' : 'none';
    const buffers = [whole(out)];
    if (!aliasA) buffers.push(whole(a));
    if (!aliasB) buffers.push(whole(b));
    const count = out.rows * out.cols;
    if (count === 0) return;
    // a and b may share one buffer (read-only twice is fine) while out is separate.
    dispatch(`${op}:${alias}`, () => binarySource(op, alias), buffers, { count, ...extra }, linearGrid(Math.ceil(count / ELEMENTWISE_WG)));
  }

  return backend;
}
