/**
 * The engine worker: opens the model (engine/openModel) from shards the page supplies — the page
 * owns the swarm peer and OPFS, since WebRTC is not available in workers — and holds the chat
 * session, whose KV cache lives across turns. Running here keeps the page responsive through
 * prefill and verification.
 */
import { ChatSession, openModel, type ChatReply, type Engine, type LayerObserver, type OpenedModel } from '../engine/index.ts';
import type { Backend } from '../kernels/index.ts';
import { decodeManifest } from '../manifests/index.ts';
import type { ShardSource } from '../storage/index.ts';
import { chooseEngine } from './engine-choice.ts';
import type { BackendChoice, FromWorker, Sampling, ToWorker } from './protocol.ts';

const post = (m: FromWorker) => postMessage(m);
const pending = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();
let nextReq = 0;
let model: { engine: Engine; store: OpenedModel['store']; session: ChatSession } | undefined;
let turn: AbortController | undefined;
/** With a chat template: the conversation; without: the text being continued. */
const messages: { role: 'user' | 'assistant'; content: string }[] = [];
let transcript = '';
/** Per MoE layer, the experts the latest routed row used (the token being generated). */
let lastExperts: number[][] = [];
let backend: Promise<Backend> | undefined;

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

const expertRecorder: LayerObserver = {
  routed(layer, routing) {
    const row = routing.tokens - 1;
    lastExperts[layer] = Array.from(routing.experts.subarray(row * routing.k, (row + 1) * routing.k));
  },
};

/** The engine's backend (engine-choice.ts; its WASM workers are nested in this worker), and the page told which and why. */
async function chooseBackend(choice: BackendChoice, because: string | null): Promise<Backend> {
  // A remembered CPU path that no longer starts (another browser version, say) is measured again.
  const { backend: chosen, report } = await chooseEngine(choice, because).catch((err: unknown) => {
    if (because === null) throw err;
    return chooseEngine('auto', null);
  });
  post({ t: 'backend', report });
  return chosen;
}

async function load(msg: Extract<ToWorker, { t: 'load' }>): Promise<void> {
  const t0 = performance.now();
  const manifest = decodeManifest(msg.manifest, 'the page');
  if (!backend) throw new Error('the page loads a model before choosing a backend');
  const chosen = await backend;
  post({ t: 'phase', phase: 'weights' });
  const opened = await openModel({
    // WebGPU compiles its pipelines in a warm-up token; the CPU paths have nothing to compile.
    backend: chosen, modelId: msg.modelId, sources: [pageSource], observer: expertRecorder, warmup: chosen.name === 'webgpu',
    manifestFrom: [{ name: 'the page', getManifest: async () => msg.manifest }],
    // Experts are paged through the store (so its tiers can be shown), all of them allowed on the device.
    budgets: { vramBytes: manifest.totals.expertBytes, ramBytes: msg.ramBytes },
    onProgress: (p) => {
      if (p.stage === 'shard' && p.kind === 'tokenizer') post({ t: 'phase', phase: 'tokenizer' });
      if (p.stage === 'pipelines') post({ t: 'phase', phase: 'pipeline' });
    },
  });
  model = { engine: opened.engine, store: opened.store, session: new ChatSession(opened.engine) };
  post({
    t: 'ready', loadMs: performance.now() - t0, numLayers: manifest.config.numLayers, numExperts: manifest.config.moe.numExperts,
    hasChatTemplate: opened.engine.chatTemplate !== null,
  });
}

async function send(text: string, s: Sampling): Promise<void> {
  if (!model) throw new Error('no model loaded');
  const { engine, session, store } = model;
  turn = new AbortController();
  const opts = { maxTokens: s.maxTokens, temperature: s.temperature, topP: s.topP, seed: s.seed, signal: turn.signal };
  const chat = engine.chatTemplate !== null;
  const reply: ChatReply = chat ? session.chat([...messages, { role: 'user', content: text }], opts) : session.complete(transcript + text, opts);
  lastExperts = [];
  for await (const d of reply) post({ t: 'token', id: d.id, text: d.text, experts: lastExperts.map((e) => [...e]), storage: store.stats() });
  const r = await reply.result;
  if (chat) messages.push({ role: 'user', content: text }, { role: 'assistant', content: r.text });
  else transcript += text + r.text;
  post({ t: 'done', storage: store.stats(), result: { ids: r.ids, text: r.text, promptTokens: reply.promptTokens, finishReason: r.finishReason, stats: r.stats } });
}

onmessage = (e: MessageEvent<ToWorker>) => {
  const msg = e.data;
  const fail = (err: unknown) => post({ t: 'error', message: err instanceof Error ? err.message : String(err) });
  if (msg.t === 'shard') {
    const p = pending.get(msg.req);
    pending.delete(msg.req);
    if (msg.bytes) p?.resolve(msg.bytes);
    else p?.reject(new Error(msg.error ?? 'shard unavailable'));
  } else if (msg.t === 'backend') {
    backend = chooseBackend(msg.choice, msg.because);
    backend.catch(fail);
  } else if (msg.t === 'load') void load(msg).catch(fail);
  else if (msg.t === 'send') void send(msg.text, msg.sampling).catch(fail);
  else if (msg.t === 'stop') turn?.abort();
  else {
    messages.length = 0;
    transcript = '';
    void model?.session.reset().catch(fail);
  }
};
