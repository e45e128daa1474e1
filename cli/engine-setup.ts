/** Shared by the commands that run a model: backend choice and telemetry. */
import type { GenerationStats } from '../engine/index.ts';
import { createCpuBackend, createWebGpuBackend, type Backend } from '../kernels/index.ts';
import { UsageError } from './command.ts';

export const backendOptions = {
  backend: { type: 'string', default: 'webgpu' },
} as const;

export const BACKEND_HELP = '  --backend webgpu|cpu   where the kernels run (default webgpu; cpu is the TypeScript reference)';

export async function createBackend(name: string): Promise<Backend> {
  if (name === 'cpu') return createCpuBackend();
  if (name === 'webgpu') return createWebGpuBackend();
  throw new UsageError(`--backend must be webgpu or cpu, got "${name}"`);
}

/** One line of telemetry for the terminal. */
export function statsLine(s: GenerationStats): string {
  return `[${s.generatedTokens} tokens · load ${s.loadMs.toFixed(0)} ms · TTFT ${s.ttftMs.toFixed(0)} ms · ` +
    `${s.decodeTokPerS.toFixed(1)} tok/s · GPU ${(s.gpuBytes / 2 ** 20).toFixed(1)} MiB]\n`;
}
