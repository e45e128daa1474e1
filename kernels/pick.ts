/**
 * Choosing a backend by measurement: each candidate runs a decode-shaped probe (GEMVs the size of
 * a small model's expert matrices, read back), the fastest is kept and the others are destroyed.
 * A candidate may also be taken at once without measuring (a hardware GPU beats every CPU path
 * on a whole decode step even where one small GEMV's latency would say otherwise).
 */
import type { Backend } from './backend.ts';
import { KernelError } from './layout.ts';

export interface BackendCandidate {
  name: string;
  create(): Promise<Backend>;
  /** True: use this backend without measuring the rest. */
  takeAtOnce?(backend: Backend): boolean;
}

export interface BackendTrial {
  name: string;
  /** Milliseconds per probe, when it ran. */
  ms?: number;
  /** Why the candidate could not be used. */
  error?: string;
}

export interface BackendPick {
  name: string;
  backend: Backend;
  trials: BackendTrial[];
}

const PROBE_ROWS = 2048;
const PROBE_COLS = 1024;

/** Milliseconds per q8_0 GEMV of 2048×1024 (2.1 MB), read back; the best of a few runs after a warm-up. */
export async function probeGemv(be: Backend): Promise<number> {
  const bytes = new Uint8Array(PROBE_ROWS * PROBE_COLS + (PROBE_ROWS * PROBE_COLS) / 16);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
  for (let i = PROBE_ROWS * PROBE_COLS; i < bytes.length; i += 2) bytes[i + 1] = 0x20; // scales 2^-7
  const src = be.upload(bytes);
  const w = be.weight(src, 0, 'q8_0', PROBE_ROWS, PROBE_COLS);
  const x = be.act(1, PROBE_COLS);
  be.write(x, new Float32Array(PROBE_COLS).fill(0.01));
  const out = be.act(1, PROBE_ROWS);
  let best = Infinity;
  try {
    for (let run = 0; run < 4; run++) {
      const t0 = performance.now();
      be.matmul(x, w, out);
      await be.read(out);
      if (run > 0) best = Math.min(best, performance.now() - t0);
    }
  } finally {
    be.freeAct(x);
    be.freeAct(out);
    be.releaseBytes(src);
  }
  return best;
}

function destroy(b: Backend): void {
  const d = (b as Partial<{ destroy(): void }>).destroy;
  if (typeof d === 'function') d.call(b);
}

/**
 * The fastest of `candidates` by `probe`, in order: one whose `takeAtOnce` says so wins without
 * measuring the rest. Throws when none can be created.
 *
 * @example
 * const pick = await pickBackend([
 *   { name: 'webgpu', create: () => createWebGpuBackend(), takeAtOnce: (b) => !(b as WebGpuBackend).info.software },
 *   { name: 'wasm', create: () => createWasmBackend() },
 *   { name: 'cpu', create: async () => createCpuBackend() },
 * ]);
 */
export async function pickBackend(candidates: BackendCandidate[], probe: (b: Backend) => Promise<number> = probeGemv): Promise<BackendPick> {
  const trials: BackendTrial[] = [];
  let best: { name: string; backend: Backend; ms: number } | null = null;
  for (const c of candidates) {
    let backend: Backend;
    try {
      backend = await c.create();
    } catch (err) {
      trials.push({ name: c.name, error: err instanceof Error ? err.message : String(err) });
      continue;
    }
    if (c.takeAtOnce?.(backend)) {
      if (best) destroy(best.backend);
      trials.push({ name: c.name });
      return { name: c.name, backend, trials };
    }
    const ms = await probe(backend);
    trials.push({ name: c.name, ms });
    if (!best || ms < best.ms) {
      if (best) destroy(best.backend);
      best = { name: c.name, backend, ms };
    } else destroy(backend);
  }
  if (!best) throw new KernelError(`no backend could be created: ${trials.map((t) => `${t.name}: ${t.error}`).join('; ')}`);
  return { name: best.name, backend: best.backend, trials };
}
