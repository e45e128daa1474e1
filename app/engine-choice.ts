/**
 * Which backend the tab's engine runs on, and the sentence the page shows about it. A hardware
 * WebGPU adapter is taken at once; otherwise the software adapter (if any), the WASM SIMD backend
 * and the TypeScript backend are measured by `pickBackend` and the fastest kept, as the CLI's
 * `--backend auto` does. The verdict for a CPU path is remembered by the page (`because`), so a
 * later visit skips probing WebGPU.
 */
import {
  createCpuBackend, createWasmBackend, createWebGpuBackend, pickBackend, probeGemv,
  type Backend, type BackendTrial, type WasmBackend, type WebGpuBackend,
} from '../kernels/index.ts';
import type { BackendChoice, EngineReport } from './protocol.ts';

/** How each backend is made (tests pass Node's; the tab uses the browser's). */
export interface BackendFactories {
  webgpu(): Promise<WebGpuBackend>;
  wasm(): Promise<WasmBackend>;
  cpu(): Backend;
}

export const browserFactories: BackendFactories = {
  webgpu: () => createWebGpuBackend(),
  wasm: () => createWasmBackend(),
  cpu: () => createCpuBackend(),
};

/**
 * Up to three probes per candidate, the best kept: a tab shares its cores with the rest of the
 * machine, and one stalled thread can lose a fast backend a single probe. A slow candidate (a
 * software adapter: hundreds of ms) is probed once, since a stall cannot change its rank and
 * repeating it would delay the load by seconds.
 */
const PROBES = 3;
const REPEAT_BELOW_MS = 50;

async function steadyProbe(be: Backend): Promise<number> {
  let best = await probeGemv(be);
  for (let i = 1; i < PROBES && best < REPEAT_BELOW_MS; i++) best = Math.min(best, await probeGemv(be));
  return best;
}

function wasmLabel(be: WasmBackend): string {
  const n = be.threading.threads;
  return `CPU (WebAssembly SIMD, ${n} thread${n === 1 ? '' : 's'})`;
}

/** The report of a CPU path: the sentence says why the CPU, which engine, and any single-thread note. */
function cpuReport(be: Backend, why: string, trials: BackendTrial[], measured: string): EngineReport {
  const wasm = be.name === 'wasm' ? (be as WasmBackend) : null;
  const engine = wasm ? wasmLabel(wasm) : 'CPU (TypeScript)';
  const threadNote = wasm?.threading.note ? ` ${wasm.threading.note}.` : '';
  return {
    name: wasm ? 'wasm' : 'cpu', engine, threads: wasm?.threading.threads ?? 1, cpuBecause: why, trials,
    note: `${why}: running on the ${engine}${measured}.${threadNote}`,
  };
}

function trialText(trials: BackendTrial[]): string {
  const measured = trials.filter((t) => t.ms !== undefined);
  return measured.length > 1 ? ` (measured per probe GEMV: ${measured.map((t) => `${t.name} ${t.ms!.toFixed(1)} ms`).join(', ')})` : '';
}

/**
 * The backend for `choice` ('auto' measures; the others are taken as asked). `because`, when the
 * page remembered an earlier verdict, replaces "chosen in the URL" as the reason for a CPU path.
 *
 * @example
 * const { backend, report } = await chooseEngine('auto', null);
 * console.log(report.engine, report.note); // "CPU (WebAssembly SIMD, 4 threads)", "no WebGPU in this browser (…): …"
 */
export async function chooseEngine(choice: BackendChoice, because: string | null, f: BackendFactories = browserFactories): Promise<{ backend: Backend; report: EngineReport }> {
  const asked = because ?? `${choice === 'cpu' ? 'the TypeScript' : 'the WASM'} backend chosen in the URL (?backend=${choice})`;
  if (choice === 'cpu') {
    const backend = f.cpu();
    return { backend, report: cpuReport(backend, asked, [], '') };
  }
  if (choice === 'wasm') {
    const backend = await f.wasm();
    return { backend, report: cpuReport(backend, asked, [], '') };
  }
  if (choice === 'webgpu') {
    const gpu = await f.webgpu();
    const note = gpu.info.software ? `WebGPU runs on a software adapter (${gpu.info.description}), as the URL asks (?backend=webgpu): slow.` : null;
    return { backend: gpu, report: { name: 'webgpu', engine: `WebGPU (${gpu.info.description})`, threads: null, cpuBecause: null, trials: [], note } };
  }
  let adapter: string | null = null;
  const pick = await pickBackend([
    {
      name: 'webgpu',
      create: async () => {
        const gpu = await f.webgpu();
        adapter = gpu.info.description;
        return gpu;
      },
      takeAtOnce: (b) => !(b as WebGpuBackend).info.software,
    },
    { name: 'wasm', create: () => f.wasm() },
    { name: 'cpu', create: async () => f.cpu() },
  ], steadyProbe);
  const measured = trialText(pick.trials);
  if (pick.name === 'webgpu') {
    const gpu = pick.backend as WebGpuBackend;
    const note = gpu.info.software ? `WebGPU here is a software adapter (${gpu.info.description}), yet faster than the CPU paths${measured}.` : null;
    return { backend: gpu, report: { name: 'webgpu', engine: `WebGPU (${gpu.info.description})`, threads: null, cpuBecause: null, trials: pick.trials, note } };
  }
  const gpuError = pick.trials.find((t) => t.name === 'webgpu')?.error;
  const why = adapter !== null ? `WebGPU here is a software adapter (${adapter}), slower than the CPU` : `no WebGPU in this browser (${gpuError ?? 'unknown reason'})`;
  return { backend: pick.backend, report: cpuReport(pick.backend, why, pick.trials, measured) };
}
