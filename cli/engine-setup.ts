/** Shared by the commands that run a model: backend choice and telemetry. */
import type { GenerationStats } from '../engine/index.ts';
import { createCpuBackend, createWebGpuBackend, pickBackend, type Backend, type WebGpuBackend } from '../kernels/index.ts';
import { createWasmBackendNode } from '../kernels/node.ts';
import { UsageError } from './command.ts';

export const backendOptions = {
  backend: { type: 'string', default: 'auto' },
} as const;

export const BACKEND_HELP =
  '  --backend B            auto (default): WebGPU on a hardware GPU, else the fastest CPU path measured\n' +
  '                         at start; webgpu; wasm (WebAssembly SIMD, a thread per core); cpu (the\n' +
  '                         TypeScript reference)';

async function wasmBackend(): Promise<Backend> {
  const be = await createWasmBackendNode();
  if (be.threading.note) process.stderr.write(`${be.threading.note}\n`);
  return be;
}

export async function createBackend(name: string): Promise<Backend> {
  if (name === 'cpu') return createCpuBackend();
  if (name === 'webgpu') return createWebGpuBackend();
  if (name === 'wasm') return wasmBackend();
  if (name !== 'auto') throw new UsageError(`--backend must be auto, webgpu, wasm or cpu, got "${name}"`);
  const pick = await pickBackend([
    { name: 'webgpu', create: () => createWebGpuBackend(), takeAtOnce: (b) => !(b as WebGpuBackend).info.software },
    { name: 'wasm', create: wasmBackend },
    { name: 'cpu', create: async () => createCpuBackend() },
  ]);
  const trials = pick.trials.map((t) => `${t.name} ${t.ms !== undefined ? `${t.ms.toFixed(2)} ms` : (t.error ?? 'hardware GPU')}`);
  process.stderr.write(`backend ${pick.name} (auto: ${trials.join(', ')})\n`);
  return pick.backend;
}

/** One line of telemetry for the terminal. */
export function statsLine(s: GenerationStats): string {
  return `[${s.generatedTokens} tokens · load ${s.loadMs.toFixed(0)} ms · TTFT ${s.ttftMs.toFixed(0)} ms · ` +
    `${s.decodeTokPerS.toFixed(1)} tok/s · GPU ${(s.gpuBytes / 2 ** 20).toFixed(1)} MiB]\n`;
}
