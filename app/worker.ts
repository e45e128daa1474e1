/**
 * The engine worker: loads the model from shards the page supplies (the page owns the swarm peer
 * and OPFS, since WebRTC is not available in workers), keeps VRAM and RAM tiers, and streams tokens.
 * Running here keeps the page responsive through prefill and verification.
 */
import { Engine, backendUploader, type ModelSource } from '../engine/index.ts';
import { createCpuBackend, createWebGpuBackend, type Backend, type DeviceBytes } from '../kernels/index.ts';
import { blake3Hex, decodeManifest, type Manifest } from '../manifests/index.ts';
import { ShardStore, shardMeta, type ShardSource } from '../storage/index.ts';
import type { BackendChoice, FromWorker, Sampling, ToWorker } from './protocol.ts';

const post = (m: FromWorker) => postMessage(m);
const pending = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();
let nextReq = 0;
let engine: Engine | undefined;
let stopRequested = false;

/** Shards come from the page, which reads OPFS or asks the swarm; the store verifies them here again. */
const pageSource: ShardSource = {
  name: 'page',
  get(hash) {
    const req = nextReq++;
    return new Promise((resolve, reject) => {
      pending.set(req, { resolve, reject });
      post({ t: 'need', req, hash });
    });
  },
};

/** WebGPU on real hardware; the TypeScript backend when there is none or only a software adapter. */
async function chooseBackend(choice: BackendChoice): Promise<Backend> {
  if (choice === 'cpu') {
    post({ t: 'backend', name: 'cpu', adapter: 'TypeScript', note: 'CPU backend chosen in the URL (?backend=cpu).' });
    return createCpuBackend();
  }
  let why: string;
  try {
    const gpu = await createWebGpuBackend();
    if (!gpu.info.software || choice === 'webgpu') {
      post({ t: 'backend', name: 'webgpu', adapter: gpu.info.description, note: gpu.info.software ? 'WebGPU runs on a software adapter (slow).' : null });
      return gpu;
    }
    why = `WebGPU here is a software adapter (${gpu.info.description}), slower than the CPU backend`;
  } catch (err) {
    why = `no WebGPU in this browser (${(err as Error).message})`;
  }
  post({ t: 'backend', name: 'cpu', adapter: 'TypeScript', note: `${why}: running on the CPU backend instead.` });
  return createCpuBackend();
}

function hasChatTemplate(m: Manifest): boolean {
  return 'chat_template.jinja' in m.tokenizer || 'chat_template.json' in m.tokenizer;
}

async function load(msg: Extract<ToWorker, { t: 'load' }>): Promise<void> {
  const t0 = performance.now();
  if ((await blake3Hex(msg.manifest)) !== msg.modelId) throw new Error(`the manifest does not hash to model id ${msg.modelId}`);
  const manifest = decodeManifest(msg.manifest, 'the page');
  const backend = await chooseBackend(msg.backend);
  const store = await ShardStore.open<DeviceBytes>({
    sources: [pageSource], ramBytes: msg.ramBytes, vram: { bytes: Math.max(msg.vramBytes, manifest.totals.expertBytes), uploader: backendUploader(backend) },
    meta: shardMeta(manifest), numLayers: manifest.config.numLayers,
  });
  const tokenizer = new Set(Object.values(manifest.tokenizer));
  const source: ModelSource = {
    manifest, id: msg.modelId,
    shard: (hash) => {
      if (tokenizer.has(hash)) post({ t: 'phase', phase: 'tokenizer' });
      return store.get(hash);
    },
  };
  post({ t: 'phase', phase: 'weights' });
  engine = await Engine.load({ backend, source, store, prefetchDepth: 1 });
  post({ t: 'phase', phase: 'pipeline' });
  // One token compiles every pipeline, so the first reply does not pay for it.
  for await (const _ of engine.generate([manifest.config.bosTokenId ?? 0], { maxNewTokens: 1, temperature: 0, stopOnEos: false })) break;
  const moe = manifest.config.moe;
  post({
    t: 'ready', loadMs: performance.now() - t0, numLayers: manifest.config.numLayers, numExperts: moe.numExperts,
    hasChatTemplate: hasChatTemplate(manifest), eos: manifest.config.eosTokenIds,
  });
}

async function generate(prompt: string, s: Sampling): Promise<void> {
  if (!engine) throw new Error('no model loaded');
  stopRequested = false;
  const ids = engine.encode(prompt);
  post({ t: 'prompt', ids });
  const gen = engine.generate(ids, { maxNewTokens: s.maxNewTokens, temperature: s.temperature, topP: s.topP, seed: s.seed });
  for await (const tok of gen) {
    post({ t: 'token', id: tok.id, text: tok.text, experts: tok.experts, stats: gen.stats });
    // Stop is read between tokens: the loop yields to the message queue at every await.
    if (stopRequested) break;
  }
  post({ t: 'done', stopped: stopRequested, stats: gen.stats });
}

onmessage = (e: MessageEvent<ToWorker>) => {
  const msg = e.data;
  const fail = (err: unknown) => post({ t: 'error', message: err instanceof Error ? err.message : String(err) });
  if (msg.t === 'shard') {
    const p = pending.get(msg.req);
    pending.delete(msg.req);
    if (msg.bytes) p?.resolve(msg.bytes);
    else p?.reject(new Error(msg.error ?? 'shard unavailable'));
  } else if (msg.t === 'load') void load(msg).catch(fail);
  else if (msg.t === 'generate') void generate(msg.prompt, msg.sampling).catch(fail);
  else stopRequested = true;
};
