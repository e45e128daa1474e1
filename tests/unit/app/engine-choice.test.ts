/**
 * The tab's backend choice (app/engine-choice.ts) with Node's WASM backend and stand-in WebGPU
 * adapters: a hardware adapter is taken at once, otherwise the fastest CPU path by measurement,
 * and the sentence the page shows names the engine, the reason and any single-thread note.
 */
import { describe, expect, it } from 'vitest';
import { chooseEngine, type BackendFactories } from '../../../app/engine-choice.ts';
import { createCpuBackend, createWasmBackend, type WebGpuBackend } from '../../../kernels/index.ts';
import { createWasmBackendNode } from '../../../kernels/node.ts';

/** A stand-in adapter: the reference backend with WebGPU's info, `slowMs` added to every read. */
function fakeGpu(software: boolean, slowMs = 0): { gpu: WebGpuBackend; destroyed: () => boolean } {
  let destroyed = false;
  const be = createCpuBackend();
  const read = be.read.bind(be);
  const gpu = Object.assign(be, {
    info: { software, description: software ? 'SwiftShader (stand-in)' : 'Hardware (stand-in)' },
    read: async (a: Parameters<typeof read>[0]) => {
      await new Promise((r) => setTimeout(r, slowMs));
      return read(a);
    },
    destroy: () => void (destroyed = true),
  }) as unknown as WebGpuBackend;
  return { gpu, destroyed: () => destroyed };
}

function factories(webgpu: () => Promise<WebGpuBackend>, made: string[] = []): BackendFactories {
  return {
    webgpu,
    wasm: () => (made.push('wasm'), createWasmBackendNode({ threads: 2 })),
    cpu: () => (made.push('cpu'), createCpuBackend()),
  };
}

describe('chooseEngine', () => {
  it('without WebGPU measures the CPU paths and runs the WASM one, saying why', async () => {
    const { backend, report } = await chooseEngine('auto', null, factories(() => Promise.reject(new Error('navigator.gpu is absent'))));
    try {
      expect(backend.name).toBe('wasm');
      expect(report.name).toBe('wasm');
      expect(report.engine).toBe('CPU (WebAssembly SIMD, 2 threads)');
      expect(report.threads).toBe(2);
      expect(report.cpuBecause).toBe('no WebGPU in this browser (navigator.gpu is absent)');
      expect(report.note).toMatch(/^no WebGPU in this browser \(navigator\.gpu is absent\): running on the CPU \(WebAssembly SIMD, 2 threads\) \(measured per probe GEMV: wasm [\d.]+ ms, cpu [\d.]+ ms\)\.$/);
      expect(report.trials.map((t) => t.name)).toEqual(['webgpu', 'wasm', 'cpu']);
      expect(report.trials[0]!.error).toBe('navigator.gpu is absent');
    } finally {
      (backend as unknown as { destroy?: () => void }).destroy?.();
    }
  });

  it('takes a hardware adapter at once without creating the CPU paths', async () => {
    const made: string[] = [];
    const { gpu } = fakeGpu(false);
    const { backend, report } = await chooseEngine('auto', null, factories(async () => gpu, made));
    expect(backend).toBe(gpu);
    expect(made).toEqual([]);
    expect(report).toMatchObject({ name: 'webgpu', engine: 'WebGPU (Hardware (stand-in))', note: null, cpuBecause: null });
  });

  it('drops a software adapter slower than the WASM backend and says so', async () => {
    const slow = fakeGpu(true, 200);
    const { backend, report } = await chooseEngine('auto', null, factories(async () => slow.gpu));
    try {
      expect(report.name).toBe('wasm');
      expect(slow.destroyed()).toBe(true);
      expect(report.cpuBecause).toBe('WebGPU here is a software adapter (SwiftShader (stand-in)), slower than the CPU');
      expect(report.note).toContain('slower than the CPU: running on the CPU (WebAssembly SIMD, 2 threads) (measured per probe GEMV: webgpu');
    } finally {
      (backend as unknown as { destroy(): void }).destroy();
    }
  });

  it('takes ?backend= as asked; a remembered verdict is the reason given; a single-thread note is shown', async () => {
    const noGpu = () => Promise.reject(new Error('unused'));
    const cpu = await chooseEngine('cpu', null, factories(noGpu));
    expect(cpu.report).toMatchObject({ name: 'cpu', engine: 'CPU (TypeScript)', threads: 1, note: 'the TypeScript backend chosen in the URL (?backend=cpu): running on the CPU (TypeScript).' });
    // Node has no Web Workers: the browser-safe backend without a way to start one runs on one thread and says why.
    const wasm = await chooseEngine('wasm', 'no WebGPU in this browser (x) (remembered from this browser\'s last visit)', {
      ...factories(noGpu),
      wasm: () => createWasmBackend({ threads: 2 }),
    });
    try {
      expect(wasm.report.engine).toBe('CPU (WebAssembly SIMD, 1 thread)');
      expect(wasm.report.note).toMatch(/^no WebGPU in this browser \(x\) \(remembered from this browser's last visit\): running on the CPU \(WebAssembly SIMD, 1 thread\)\. .*WASM runs single-threaded\.$/);
    } finally {
      (wasm.backend as unknown as { destroy(): void }).destroy();
    }
  });
});
