/**
 * Kernel benchmark: what fraction of the device's memory bandwidth the decode GEMV reaches for
 * each weight layout, on matrix shapes of real models, next to a plain streaming read of the same
 * device in the same run; prefill GEMM GFLOP/s; upload rate of staging buffers vs queue.writeBuffer.
 *
 *   node_modules/.bin/node bench/kernels.ts [--json] [--out FILE] [--small] [--no-sweep]
 *   doppler bench kernels [--json] [--out FILE] [--small] [--no-sweep]
 * On a GPU host: ../shared/gpu-host/prepare.sh bench/kernels.ts, then `node .gpu-host/entry.mjs --json --out F`.
 * --small uses shapes a software rasteriser (SwiftShader) finishes in seconds.
 *
 * GPU time comes from timestamp queries around one compute pass of many dispatches (wall clock
 * over a submit-and-wait when the device lacks timestamp-query). GEMV weights rotate through
 * enough copies to exceed any L2 cache, so every byte is read from device memory.
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { FORMATS, tensorLayout, WEIGHT_DTYPES, type WeightDtype } from '../manifests/index.ts';
import { createCpuBackend, createWebGpuBackend, defaultGemvShape, weightByteLength, type WebGpuBackend } from '../kernels/index.ts';
import { unitWeights } from '../kernels/wgsl/matmul.wgsl.ts';

export interface KernelBenchOptions {
  small?: boolean;
  sweep?: boolean;
  log?: (line: string) => void;
}

const DTYPES: readonly WeightDtype[] = WEIGHT_DTYPES;
/** [N (out features), K (in features)]: Mixtral w1/w3 and w2, a 4096² attention projection, DeepSeek-V3 expert gate/up and down. */
const SHAPES: Array<[number, number, string]> = [
  [14336, 4096, 'mixtral-8x7b w1/w3'],
  [4096, 14336, 'mixtral-8x7b w2'],
  [4096, 4096, 'mixtral-8x7b attention q/o'],
  [2048, 7168, 'deepseek-v3 expert gate/up'],
  [7168, 2048, 'deepseek-v3 expert down'],
];
const SMALL_SHAPES: Array<[number, number, string]> = [
  [1024, 512, 'small'],
  [512, 1024, 'small'],
];
interface GemvConfig {
  tpr: number;
  rpt: number;
  stageX: boolean;
  narrow: boolean;
  unroll: number;
}
const cfg = (tpr: number, rpt: number, stageX: boolean, narrow: boolean, unroll: number): GemvConfig => ({ tpr, rpt, stageX, narrow, unroll });
/** Wide units (the only ones of f32), one staged-x reference, then narrow units over threads × rows × unroll. */
const SWEEP: GemvConfig[] = [
  cfg(32, 2, false, false, 1), cfg(32, 4, false, false, 1), cfg(64, 1, false, false, 1), cfg(32, 2, false, false, 2), cfg(64, 1, false, false, 2), cfg(32, 1, false, false, 4),
  cfg(32, 4, true, false, 1),
  ...[32, 64, 128].flatMap((tpr) => [1, 2, 4].flatMap((rpt) => [1, 2, 4].map((unroll) => cfg(tpr, rpt, false, true, unroll)))),
  cfg(16, 1, false, true, 2), cfg(16, 2, false, true, 2), cfg(256, 1, false, true, 1), cfg(256, 1, false, true, 2), cfg(256, 2, false, true, 1),
];

const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
/** Three significant digits, so SwiftShader's tiny rates do not print as 0. */
const sig = (x: number): number => Number(x.toPrecision(3));

/** Filler bytes of an n×k weight made plausible by the format's own synth rule (small finite values and scales). */
function weightFiller(dtype: WeightDtype, n: number, k: number): Uint8Array {
  const f = FORMATS[dtype];
  const { blocks, mainBytes, scalesOffset, byteLength } = tensorLayout(f, n, k);
  const data = filler(byteLength);
  f.synth.main(data.subarray(0, mainBytes));
  f.synth.scales?.(data.subarray(scalesOffset, scalesOffset + blocks * f.scaleBytes));
  return data;
}

/** Random-looking bytes without paying for a random number per byte. */
function filler(bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  const block = new Uint8Array(Math.min(bytes, 1 << 20));
  let s = 0x9e3779b9;
  for (let i = 0; i < block.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    block[i] = s & 0xff;
  }
  for (let off = 0; off < bytes; off += block.length) out.set(block.subarray(0, Math.min(block.length, bytes - off)), off);
  return out;
}

/** GPU nanoseconds of what `record` queues on the backend (timestamps, else wall clock around submit+wait). */
async function timeOps(be: WebGpuBackend, record: () => void): Promise<number> {
  if (be.info.timestamps) {
    const ns = await be.timeGpu(record);
    if (ns !== null && ns > 0) return ns;
  }
  await be.sync();
  record();
  const t0 = performance.now();
  await be.sync();
  return (performance.now() - t0) * 1e6;
}

type ReadPattern = 'grid-stride' | 'slab';

/**
 * A streaming read, UNR independent 16-byte loads in flight per thread per step: grid-stride (the
 * whole grid sweeps the buffer front to back) or slab (each workgroup streams its own contiguous
 * slice, as a gemv workgroup streams its rows).
 */
const readWgsl = (pattern: ReadPattern, unr: number): string => {
  const accs = Array.from({ length: unr }, (_, j) => `a${j}`);
  const [begin, end, stride, tid] = pattern === 'grid-stride' ? ['gid.x', 'n', 'nwg.x * 256u', 'gid.x'] : ['wg.x * per + li', 'min(wg.x * per + per, n)', '256u', 'li'];
  return `@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let n = arrayLength(&src);
  let per = (n + nwg.x - 1u) / nwg.x;
  let end = ${end};
  let stride = ${stride};
${accs.map((a) => `  var ${a} = vec4<u32>(0u);`).join('\n')}
  var i = ${begin};
  for (; i + ${unr - 1}u * stride < end; i += ${unr}u * stride) {
${accs.map((a, j) => `    ${a} ^= src[i + ${j}u * stride];`).join('\n')}
  }
  for (; i < end; i += stride) { a0 ^= src[i]; }
  let acc = ${accs.join(' ^ ')};
  if (acc.x == 0x9e3779b9u && acc.y == 0x7f4a7c15u && per == 0u) { dst[${tid} & 255u] = acc.z ^ acc.w; }
}`;
};

interface ReadVariant {
  pattern: ReadPattern;
  workgroups: number;
  unroll: number;
  /** The bytes as one buffer, or four quarters read in turn. */
  buffers: 1 | 4;
  /** Random bytes, or the zeros of a never-written buffer (which the driver may store compressed). */
  filled: boolean;
}
const rv = (pattern: ReadPattern, workgroups: number, unroll: number, buffers: 1 | 4 = 1, filled = true): ReadVariant => ({ pattern, workgroups, unroll, buffers, filled });
const READ_VARIANTS: ReadVariant[] = [
  rv('grid-stride', 16384, 4, 1, false),
  rv('grid-stride', 1024, 4), rv('grid-stride', 4096, 4), rv('grid-stride', 16384, 4), rv('grid-stride', 2048, 8),
  rv('slab', 1024, 4), rv('slab', 4096, 4), rv('slab', 16384, 4), rv('slab', 4096, 8),
  rv('grid-stride', 4096, 4, 4), rv('slab', 4096, 4, 4),
  // grids that are not powers of two: concurrent streams do not start on the same memory channel
  rv('grid-stride', 4093, 4), rv('grid-stride', 16381, 4), rv('slab', 4093, 4), rv('slab', 16381, 4), rv('slab', 1021, 8),
];

/**
 * The device's streaming read rate: `bytes` read with vec4 loads, PASS dispatches back to back in
 * one timed compute pass (clocks stay up, launch gaps vanish), best of `reps` passes, for each of
 * the variants; the best variant is the rate.
 */
async function rawRead(be: WebGpuBackend, bytes: number, reps: number, variants: ReadVariant[]): Promise<{ bytes: number; GBps: number; variants: Array<ReadVariant & { GBps: number }> }> {
  const device = be.device;
  const PASS = 8;
  const make = (size: number, filled: boolean): GPUBuffer => {
    const b = device.createBuffer({ size, usage: 0x80 | 0x8 }); // STORAGE | COPY_DST
    if (filled) {
      const chunk = filler(Math.min(size, 64 << 20));
      for (let off = 0; off < size; off += chunk.length) device.queue.writeBuffer(b, off, chunk as Uint8Array<ArrayBuffer>, 0, Math.min(chunk.length, size - off));
    }
    return b;
  };
  const sets = new Map<string, GPUBuffer[]>();
  const buffersOf = (v: ReadVariant): GPUBuffer[] => {
    const key = `${v.buffers}:${v.filled}`;
    let set = sets.get(key);
    if (!set) {
      set = Array.from({ length: v.buffers }, () => make(bytes / v.buffers, v.filled));
      sets.set(key, set);
    }
    return set;
  };
  const dst = device.createBuffer({ size: 1024, usage: 0x80 });
  const query = be.info.timestamps ? device.createQuerySet({ type: 'timestamp', count: 2 }) : null;
  const resolve = query ? device.createBuffer({ size: 16, usage: 0x200 | 0x4 }) : null;
  const readback = query ? device.createBuffer({ size: 16, usage: 0x1 | 0x8 }) : null;
  const results: Array<ReadVariant & { GBps: number }> = [];
  for (const v of variants) {
    const module = device.createShaderModule({ code: readWgsl(v.pattern, v.unroll) });
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    const binds = buffersOf(v).map((src) => device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: src } }, { binding: 1, resource: { buffer: dst } }] }));
    let best = Infinity;
    for (let r = 0; r < reps + 1; r++) {
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass(query ? { timestampWrites: { querySet: query, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {});
      pass.setPipeline(pipeline);
      for (let d = 0; d < PASS; d++) {
        pass.setBindGroup(0, binds[d % binds.length]!);
        pass.dispatchWorkgroups(v.workgroups);
      }
      pass.end();
      if (query && resolve && readback) {
        enc.resolveQuerySet(query, 0, 2, resolve, 0);
        enc.copyBufferToBuffer(resolve, 0, readback, 0, 16);
      }
      const t0 = performance.now();
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
      let ns = (performance.now() - t0) * 1e6;
      if (readback) {
        await readback.mapAsync(0x1);
        const t = new BigUint64Array(readback.getMappedRange().slice(0));
        readback.unmap();
        if (t[1]! > t[0]!) ns = Number(t[1]! - t[0]!);
      }
      if (r > 0) best = Math.min(best, (ns * binds.length) / PASS); // per `bytes`; the first pass also pays for lazy zero-initialisation
    }
    results.push({ ...v, GBps: sig(bytes / best) });
  }
  for (const b of [...[...sets.values()].flat(), dst, resolve, readback]) b?.destroy();
  query?.destroy();
  return { bytes, GBps: Math.max(...results.map((r) => r.GBps)), variants: results };
}

interface GemvResult {
  shape: string;
  n: number;
  k: number;
  dtype: WeightDtype;
  weightBytes: number;
  us: number;
  GBps: number;
  fractionOfRawRead: number;
  kernel: GemvConfig & { subgroupSize: number | null };
  withoutSubgroupReduction?: { us: number; GBps: number };
  sweep?: Array<GemvConfig & { us: number; GBps: number }>;
  best?: GemvConfig & { us: number; GBps: number; fractionOfRawRead: number };
  previousDefault?: GemvConfig & { us: number; GBps: number; fractionOfRawRead: number };
}

/** The M=1 shape chosen before narrow units (wide units, x staged for f16 and block formats), for before/after. */
function previousDefaultShape(dtype: WeightDtype, n: number, k: number): GemvConfig {
  const tpr = Math.min(32, Math.max(4, 2 ** Math.floor(Math.log2(Math.max(1, k / unitWeights(dtype) / 4)))));
  const rpt = [4, 2].find((r) => n / ((256 / tpr) * r) >= 512) ?? 1;
  return cfg(tpr, rpt, dtype !== 'f32', false, 1);
}

async function gemv(be: WebGpuBackend, n: number, k: number, dtype: WeightDtype, l2Bytes: number, iters: number, sweep: boolean, raw: number, label: string): Promise<GemvResult> {
  const bytes = weightByteLength(dtype, n, k);
  const copies = Math.max(2, Math.ceil(l2Bytes / bytes));
  const data = weightFiller(dtype, n, k);
  const srcs = Array.from({ length: copies }, () => be.upload(data));
  const ws = srcs.map((s) => be.weight(s, 0, dtype, n, k));
  const x = be.act(1, k);
  be.write(x, new Float32Array(k).fill(0.5));
  const out = be.act(1, n);
  const run = async (): Promise<number> => {
    ws.forEach((w) => be.matmul(x, w, out)); // warm: pipelines, lazy clears
    await be.sync();
    const ns = await timeOps(be, () => {
      for (let i = 0; i < iters; i++) be.matmul(x, ws[i % copies]!, out);
    });
    return ns / iters;
  };
  const chosen = defaultGemvShape(dtype, 1, n, k, be.info.software);
  const kernel = { tpr: chosen.tpr, rpt: chosen.rpt, stageX: chosen.stageX, narrow: chosen.narrow ?? false, unroll: chosen.unroll ?? 1, subgroupSize: be.info.subgroupSize };
  const ns = await run();
  const res: GemvResult = { shape: label, n, k, dtype, weightBytes: bytes, us: round(ns / 1e3, 2), GBps: sig(bytes / ns), fractionOfRawRead: sig(bytes / ns / raw), kernel };
  if (sweep && be.info.subgroupSize !== null) {
    be.setSubgroupReduction(false);
    const t = await run();
    res.withoutSubgroupReduction = { us: round(t / 1e3, 2), GBps: sig(bytes / t) };
    be.setSubgroupReduction(true);
  }
  if (sweep) {
    res.sweep = [];
    for (const c of SWEEP) {
      if (dtype === 'f32' && (c.stageX || c.narrow)) continue;
      be.setGemvChooser(() => c);
      const t = await run();
      res.sweep.push({ ...c, us: round(t / 1e3, 2), GBps: sig(bytes / t) });
    }
    const prev = previousDefaultShape(dtype, n, k);
    be.setGemvChooser(() => prev);
    const tp = await run();
    res.previousDefault = { ...prev, us: round(tp / 1e3, 2), GBps: sig(bytes / tp), fractionOfRawRead: sig(bytes / tp / raw) };
    const best = res.sweep.reduce((a, b) => (b.us < a.us ? b : a));
    res.best = { ...best, fractionOfRawRead: sig(best.GBps / raw) };
    be.setGemvChooser(null);
  }
  for (const s of srcs) be.releaseBytes(s);
  be.freeAct(x);
  be.freeAct(out);
  return res;
}

async function gemm(be: WebGpuBackend, m: number, n: number, k: number, dtype: WeightDtype, iters: number, label: string) {
  const src = be.upload(weightFiller(dtype, n, k));
  const w = be.weight(src, 0, dtype, n, k);
  const x = be.act(m, k);
  const out = be.act(m, n);
  be.matmul(x, w, out);
  await be.sync();
  const ns = (await timeOps(be, () => { for (let i = 0; i < iters; i++) be.matmul(x, w, out); })) / iters;
  be.releaseBytes(src);
  be.freeAct(x);
  be.freeAct(out);
  return { shape: label, m, n, k, dtype, ms: round(ns / 1e6, 3), GFLOPs: sig((2 * m * n * k) / ns) };
}

async function upload(be: WebGpuBackend, bytes: number, reps: number) {
  const data = filler(bytes);
  const measure = async (via: 'staging' | 'writeBuffer'): Promise<number> => {
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      await be.sync();
      const t0 = performance.now();
      const b = via === 'staging' ? be.upload(data) : be.uploadWithWriteBuffer(data);
      await be.sync();
      times.push(performance.now() - t0);
      be.releaseBytes(b);
    }
    times.sort((a, b) => a - b);
    return bytes / 1e6 / times[Math.floor(times.length / 2)]!; // GB/s from the median
  };
  const writeBuffer = await measure('writeBuffer');
  const staging = await measure('staging');
  return { bytes, reps, stagingGBps: round(staging, 2), writeBufferGBps: round(writeBuffer, 2), note: 'median of reps; time from the call until the GPU has the bytes' };
}

/**
 * Every GEMV configuration the run times, checked first against the CPU reference on a 300×512
 * problem, on this device: a fast kernel that computes the wrong thing must not look good.
 */
async function selfCheck(be: WebGpuBackend): Promise<{ configs: number; maxRelErr: number; ok: boolean }> {
  const cpu = createCpuBackend();
  const [n, k] = [300, 512];
  const xs = new Float32Array(k).map((_, i) => Math.sin(i * 0.37));
  let worst = 0;
  let configs = 0;
  for (const dtype of DTYPES) {
    const data = weightFiller(dtype, n, k);
    const ref = cpu.act(1, n);
    const xc = cpu.act(1, k);
    cpu.write(xc, xs);
    cpu.matmul(xc, cpu.weight(cpu.upload(data), 0, dtype, n, k), ref);
    const want = await cpu.read(ref);
    const scale = Math.max(...want.map(Math.abs));
    const w = be.weight(be.upload(data), 0, dtype, n, k);
    const x = be.act(1, k);
    be.write(x, xs);
    const out = be.act(1, n);
    for (const c of [null, ...SWEEP]) {
      for (const sg of [true, false]) {
        be.setGemvChooser(c && (() => c));
        be.setSubgroupReduction(sg);
        be.matmul(x, w, out);
        const got = await be.read(out);
        got.forEach((g, i) => (worst = Math.max(worst, Math.abs(g - want[i]!) / scale)));
        configs++;
      }
    }
    be.setGemvChooser(null);
    be.setSubgroupReduction(true);
    be.releaseBytes(w.src);
    be.freeAct(x);
    be.freeAct(out);
  }
  return { configs, maxRelErr: sig(worst), ok: worst <= 1e-4 };
}

/**
 * Per-op overhead of the command stream: CPU µs to record one small dispatch (a bind group and a
 * uniform slot from the per-flush arena) and GPU µs per dispatch of a 4096-float add.
 */
async function dispatchOverhead(be: WebGpuBackend, ops: number) {
  const a = be.act(1, 4096);
  const b = be.act(1, 4096);
  be.add(a, b, a);
  await be.sync();
  const t0 = performance.now();
  for (let i = 0; i < ops; i++) be.add(a, b, a);
  const recordUs = ((performance.now() - t0) * 1e3) / ops;
  await be.sync();
  const gpuNs = await timeOps(be, () => { for (let i = 0; i < ops; i++) be.add(a, b, a); });
  be.freeAct(a);
  be.freeAct(b);
  return { ops, cpuRecordUsPerOp: round(recordUs, 2), gpuUsPerOp: round(gpuNs / ops / 1e3, 2) };
}

export async function runKernelBench(opts: KernelBenchOptions = {}): Promise<Record<string, unknown>> {
  const log = opts.log ?? (() => {});
  const small = opts.small ?? false;
  const t0 = performance.now();
  const be = await createWebGpuBackend();
  try {
    const lim = be.device.limits;
    const rawBytes = small ? 64 << 20 : Math.min(1 << 30, lim.maxStorageBufferBindingSize, lim.maxBufferSize) - ((Math.min(1 << 30, lim.maxStorageBufferBindingSize, lim.maxBufferSize)) % 256);
    log(`device: ${be.info.description}; timing: ${be.info.timestamps ? 'timestamp-query' : 'wall clock'}`);
    const check = await selfCheck(be);
    log(`self-check of ${check.configs} gemv configurations against the CPU reference: max relative error ${check.maxRelErr} (${check.ok ? 'ok' : 'FAILED'})`);
    const raw = await rawRead(be, rawBytes, small ? 1 : 5, small ? READ_VARIANTS.filter((v) => v.workgroups === 1024) : READ_VARIANTS);
    log(`raw streaming read of ${raw.bytes} bytes: ${raw.GBps} GB/s`);
    const shapes = small ? SMALL_SHAPES : SHAPES;
    const l2 = small ? 0 : 512 << 20;
    const iters = small ? 4 : 60;
    const gemvs: GemvResult[] = [];
    for (const [n, k, label] of shapes) {
      for (const dtype of DTYPES) {
        const sweep = opts.sweep ?? true;
        const r = await gemv(be, n, k, dtype, l2, iters, sweep, raw.GBps, label);
        gemvs.push(r);
        log(`gemv M=1 ${n}×${k} ${dtype}: ${r.us} µs, ${r.GBps} GB/s (${(r.fractionOfRawRead * 100).toFixed(0)}% of raw read)`);
      }
    }
    const gemms = [];
    for (const [n, k, label] of shapes.slice(0, 2)) {
      for (const dtype of DTYPES) {
        const r = await gemm(be, small ? 32 : 128, n, k, dtype, small ? 2 : 10, label);
        gemms.push(r);
        log(`gemm M=${r.m} ${n}×${k} ${dtype}: ${r.ms} ms, ${r.GFLOPs} GFLOP/s`);
      }
    }
    const overhead = await dispatchOverhead(be, small ? 200 : 2000);
    log(`dispatch: ${overhead.cpuRecordUsPerOp} µs CPU to record, ${overhead.gpuUsPerOp} µs GPU per small op`);
    const up = await upload(be, small ? 16 << 20 : 64 << 20, small ? 3 : 7);
    log(`upload ${up.bytes} bytes: staging ${up.stagingGBps} GB/s, writeBuffer ${up.writeBufferGBps} GB/s`);
    return {
      bench: 'kernels',
      date: new Date().toISOString(),
      device: be.info.description,
      features: [...be.device.features].sort(),
      limits: { maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize, maxBufferSize: lim.maxBufferSize, maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize },
      timing: be.info.timestamps ? 'timestamp-query' : 'wall-clock',
      small,
      selfCheck: check,
      rawRead: raw,
      gemvM1: gemvs,
      gemm: gemms,
      upload: up,
      dispatchOverhead: overhead,
      seconds: round((performance.now() - t0) / 1000, 1),
    };
  } finally {
    be.destroy();
  }
}

export const KERNEL_BENCH_USAGE = `usage: doppler bench kernels [--json] [--out FILE] [--small] [--no-sweep]

Decode GEMV (M=1) time and effective GB/s of weight bytes per weight layout (every format in manifests/formats/)
on real model shapes, next to a raw streaming read of the same device; prefill GEMM GFLOP/s (M=128);
upload GB/s of 64 MiB through staging buffers vs queue.writeBuffer.

options:
  --json       print the result as one JSON object (otherwise progress lines and a summary)
  --out FILE   also write the JSON to FILE
  --small      small shapes, for software renderers such as SwiftShader
  --no-sweep   skip the sweep over GEMV threads-per-row / rows-per-thread shapes`;

/** Command-line entry shared by `doppler bench kernels` and the bundled GPU-host entry. */
export async function kernelBenchMain(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' }, out: { type: 'string' }, small: { type: 'boolean' }, 'no-sweep': { type: 'boolean' }, help: { type: 'boolean' } }, strict: true });
  if (values.help) {
    console.log(KERNEL_BENCH_USAGE);
    return 0;
  }
  const result = await runKernelBench({ small: values.small ?? false, sweep: !values['no-sweep'], log: values.json ? (l) => console.error(l) : (l) => console.log(l) });
  const text = JSON.stringify({ command: ['node_modules/.bin/node bench/kernels.ts', ...argv].join(' '), ...result }, null, 2);
  if (values.out) writeFileSync(values.out, text + '\n');
  if (values.json) console.log(text);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  kernelBenchMain(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
