/**
 * Page entry for the browser WASM backend test: the demo model fetched over HTTP and run on the
 * WASM backend (Web Workers when the page is cross-origin isolated), and one GEMV large enough to
 * split across threads, against the reference backend.
 */
import { Engine, type ModelSource } from '../../engine/index.ts';
import { createCpuBackend, createWasmBackend, type Backend, type WasmThreading } from '../../kernels/index.ts';
import { blake3Hex, decodeManifest } from '../../manifests/index.ts';
import { HttpSource, ShardStore } from '../../storage/index.ts';

export interface WasmPageResult {
  ids: number[];
  threading: WasmThreading;
  gemvMaxErr: number;
}

async function gemv(be: Backend): Promise<Float32Array> {
  const [n, k] = [4096, 1024];
  const bytes = new Uint8Array(n * k + (n * k) / 16).map((_, i) => (i * 7) % 251);
  for (let i = n * k + 1; i < bytes.length; i += 2) bytes[i] = 0x20;
  const w = be.weight(be.upload(bytes), 0, 'q8_0', n, k);
  const x = be.act(1, k);
  be.write(x, Float32Array.from({ length: k }, (_, i) => Math.sin(i)));
  const y = be.act(1, n);
  be.matmul(x, w, y);
  return be.read(y);
}

async function run(modelUrl: string, prompt: string, maxNewTokens: number): Promise<WasmPageResult> {
  const http = new HttpSource(modelUrl);
  const manifestBytes = await http.getManifest();
  const store = await ShardStore.open({ sources: [http], ramBytes: 64 << 20 });
  const source: ModelSource = { manifest: decodeManifest(manifestBytes, modelUrl), id: await blake3Hex(manifestBytes), shard: (h) => store.get(h) };
  const backend = await createWasmBackend({ threads: 2 });
  try {
    const engine = await Engine.load({ backend, source });
    const ids: number[] = [];
    for await (const t of engine.generate(engine.encode(prompt), { maxNewTokens, stopOnEos: false })) ids.push(t.id);
    const [got, want] = [await gemv(backend), await gemv(createCpuBackend())];
    const gemvMaxErr = got.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i]!)), 0);
    return { ids, threading: backend.threading, gemvMaxErr };
  } finally {
    backend.destroy();
    await store.close();
  }
}

Object.assign(globalThis, { dopplerWasm: run });
