/**
 * CPU GEMV throughput on the Mixtral-8x7B w1 shape (14336×4096) for q4_0, q8_0 and f16: the WASM
 * SIMD backend at 1, 2 and N threads and the TypeScript reference, next to the machine's memory
 * read bandwidth measured in the same run (WASM v128 loads summing a buffer, same thread counts,
 * and a single-threaded TypedArray copy). GEMVs rotate over copies of the weight totalling
 * --rotate-mib so each reads from DRAM, not a cache (as decode reads a different expert each time).
 * Then demo-model decode tok/s on cpu vs wasm. Writes one JSON object (stdout, and --out FILE).
 *
 *   node_modules/.bin/node bench/cpu-gemv.ts [--threads 1,2,16] [--rotate-mib 1024] [--dram-mib 1024]
 *                         [--reps 20] [--model models/tiny-moe-text-q8_0] [--tokens 32] [--out FILE]
 * On the GPU host (bundled by bench/gpu-host.sh): node .gpu-host/cpu-gemv.mjs --out cpu-gemv.json
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { Engine } from '../engine/index.ts';
import { modelDirSource } from '../engine/node.ts';
import { createCpuBackend, weightByteLength, type Backend, type WasmBackend } from '../kernels/index.ts';
import { createWasmBackendNode } from '../kernels/node.ts';
import type { WeightDtype } from '../manifests/index.ts';
import { benchArgs, invocation } from './invocation.ts';
import { intFlag, numFlag } from '../cli/command.ts';

const { values } = benchArgs({
  threads: { type: 'string' },
  'rotate-mib': { ...numFlag(1), default: '1024' },
  'dram-mib': { ...numFlag(1), default: '1024' },
  reps: { ...intFlag(1), default: '20' },
  model: { type: 'string', default: 'models/tiny-moe-text-q8_0' },
  tokens: { ...intFlag(1), default: '32' },
  out: { type: 'string' },
});
const N = availableParallelism();
const THREADS = [...new Set((values.threads ?? `1,2,${N}`).split(',').map(Number))];
const [ROWS, COLS] = [14336, 4096];
const DTYPES: WeightDtype[] = ['q4_0', 'q8_0', 'f16'];
const MIB = 2 ** 20;
const REPS = Number(values.reps);

/** Deterministic bytes of a weight: any quants, scales and halves of modest magnitude. */
function weightBytes(dtype: WeightDtype): Uint8Array {
  const len = weightByteLength(dtype, ROWS, COLS);
  const b = new Uint8Array(len);
  let s = 0x9e3779b9;
  for (let i = 0; i < len; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    b[i] = s >>> 24;
  }
  const halves = new Uint16Array(b.buffer);
  const first = dtype === 'f16' ? 0 : (dtype === 'q8_0' ? ROWS * COLS : (ROWS * COLS) / 2) / 2;
  for (let i = first; i < halves.length; i++) halves[i] = (halves[i]! & 0x83ff) | (dtype === 'f16' ? 0x3000 : 0x2000);
  return b;
}

function gbps(bytes: number, ms: number): number {
  return Math.round((bytes / ms / 1e6) * 100) / 100;
}

/**
 * Median wall time of `reps` runs of `f`, and the mean CPU time of the process (every thread) per
 * run: on a shared machine the second says what the work costs when it does get a core.
 */
async function time(reps: number, f: (i: number) => void | Promise<void>): Promise<{ ms: number; cpuMs: number }> {
  const ts: number[] = [];
  const c0 = process.cpuUsage();
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await f(i);
    ts.push(performance.now() - t0);
  }
  const cpu = process.cpuUsage(c0);
  return { ms: ts.sort((a, b) => a - b)[Math.floor(reps / 2)]!, cpuMs: (cpu.user + cpu.system) / 1000 / reps };
}

async function dram(be: WasmBackend, threads: number) {
  const bytes = Number(values['dram-mib']) * MIB;
  const buf = be.upload(new Uint8Array(bytes).fill(1));
  be.readAll(buf, threads);
  const { ms, cpuMs } = await time(5, () => void be.readAll(buf, threads));
  be.releaseBytes(buf);
  return { GBs: gbps(bytes, ms), GBsPerCpuSecond: gbps(bytes, cpuMs) };
}

function memcpy(): number {
  const bytes = Number(values['dram-mib']) * MIB;
  const [a, b] = [new Uint8Array(bytes).fill(1), new Uint8Array(bytes)];
  b.set(a);
  const t0 = performance.now();
  for (let i = 0; i < 3; i++) b.set(a);
  // a copy reads and writes each byte: report bytes read per second
  return gbps(bytes * 3, performance.now() - t0);
}

async function gemv(be: Backend, dtype: WeightDtype, reps: number, rotateBytes: number) {
  const bytes = weightBytes(dtype);
  const copies = Math.max(1, Math.ceil(rotateBytes / bytes.length));
  const ws = Array.from({ length: copies }, () => be.weight(be.upload(bytes), 0, dtype, ROWS, COLS));
  const x = be.act(1, COLS);
  be.write(x, Float32Array.from({ length: COLS }, (_, i) => Math.sin(i)));
  const out = be.act(1, ROWS);
  be.matmul(x, ws[0]!, out);
  const { ms, cpuMs } = await time(reps, (i) => be.matmul(x, ws[i % copies]!, out));
  const check = (await be.read(out)).reduce((a, v) => a + v, 0);
  for (const w of ws) be.releaseBytes(w.src);
  be.freeAct(x);
  be.freeAct(out);
  return { ms: Math.round(ms * 1000) / 1000, GBs: gbps(bytes.length, ms), GBsPerCpuSecond: gbps(bytes.length, cpuMs), copies, checksum: check };
}

async function decode(be: Backend): Promise<number> {
  const engine = await Engine.load({ backend: be, source: await modelDirSource(values.model!) });
  const gen = engine.generate(engine.encode('In the beginning'), { maxNewTokens: Number(values.tokens), stopOnEos: false });
  for await (const _ of gen);
  return Math.round(gen.stats.decodeTokPerS * 10) / 10;
}

const rotateBytes = Number(values['rotate-mib']) * MIB;
const wasm: Array<Record<string, unknown>> = [];
const dramRead: Record<string, { GBs: number; GBsPerCpuSecond: number }> = {};
const decodeTokPerS: Record<string, number> = {};
for (const t of THREADS) {
  const be = await createWasmBackendNode({ threads: t });
  if (be.threading.threads !== t) throw new Error(`asked for ${t} threads, got ${JSON.stringify(be.threading)}`);
  dramRead[t] = await dram(be, t);
  for (const dtype of DTYPES) {
    const r = await gemv(be, dtype, REPS, rotateBytes);
    wasm.push({ dtype, threads: t, ...r, ofDramRead: Math.round((r.GBs / dramRead[t]!.GBs) * 1000) / 1000 });
    process.stderr.write(`wasm ${dtype} ${t} threads: ${r.GBs} GB/s, ${r.GBsPerCpuSecond} per CPU second (read probe ${dramRead[t]!.GBs} GB/s)\n`);
  }
  decodeTokPerS[`wasm-${t}`] = await decode(be);
  be.destroy();
}
const cpu = createCpuBackend();
const reference = [];
for (const dtype of DTYPES) reference.push({ dtype, threads: 1, ...(await gemv(cpu, dtype, 2, 0)) });
decodeTokPerS.cpu = await decode(createCpuBackend());

const result = {
  bench: 'cpu-gemv',
  command: invocation('cpu-gemv.ts'),
  date: new Date().toISOString(),
  machine: { cpus: N, model: cpus()[0]?.model ?? 'unknown', node: process.version },
  shape: {
    rows: ROWS,
    cols: COLS,
    note: 'Mixtral-8x7B w1; GBs = stored weight bytes / median wall time; GBsPerCpuSecond = the same bytes / mean process CPU time (all threads)',
  },
  dramReadGBs: dramRead,
  memcpyReadGBs: memcpy(),
  wasm,
  reference,
  decode: { model: values.model, tokens: Number(values.tokens), tokPerS: decodeTokPerS },
};
const json = JSON.stringify(result, null, 2);
if (values.out) writeFileSync(values.out, json + '\n');
process.stdout.write(json + '\n');
