/**
 * The page: lists the swarm's models, joins one model's swarm through the server it came from,
 * loads the model in a worker from OPFS or the swarm while showing where every shard came from,
 * and chats with it while drawing tiers, experts, peers and speed.
 */
import type { StoreStats } from '../storage/index.ts';
import { blake3Hex } from '../manifests/index.ts';
import { shardListOf, type SignalingStatus } from '../swarm/index.ts';
import { workerEngine, type ChatEngine } from './engine-client.ts';
import type { BackendChoice } from './protocol.ts';
import { TabShards, type ServerConfig } from './shards.ts';
import { $, notice, step } from './dom.ts';
import { navigateTo, renderModels } from './model-list.ts';
import type { ModelRow, PageState } from './page-state.ts';
import { drawHeatmap, drawPeers, drawSpeed, drawTiers, formatBytes, type PeerRow } from './views.ts';

const state: PageState = {
  modelId: null, phase: 'idle', backend: null, backendNote: null, engine: null, loadMs: null, warm: null, peerId: null,
  counters: null, loadCounters: null, heldShards: 0, totalShards: 0, opfsBytes: 0, opfsBudget: 0, banned: [], signaling: null, swarmStatus: null, traffic: {}, marks: {}, shardLog: [], replies: [], errors: [],
};
(globalThis as unknown as { doppler: PageState }).doppler = state;
/** Test hook: re-hashes every shard this tab stored; corrupt ones are named. */
(globalThis as unknown as { dopplerVerifyStored: () => Promise<{ files: number; bad: string[] }> }).dopplerVerifyStored = async () => {
  const bad: string[] = [];
  const list = shards?.storage.list() ?? [];
  for (const h of list) {
    const bytes = await shards!.storage.read(h, 0, shards!.storage.sizeOf(h)!);
    if ((await blake3Hex(bytes)) !== h) bad.push(h);
  }
  return { files: list.length, bad };
};

const HEAT_TOKENS = 32;
/** The CPU path an earlier visit measured and why WebGPU was not used: `{ name, because }`. */
const VERDICT_KEY = 'doppler.cpuVerdict';
const recentExperts: number[][][] = [];
let lastStorage: StoreStats | null = null;
let lastTtft: number | null = null;
/** Next-layer prediction of the prefetcher over the latest reply. */
let lastPrefetch: { precision: number; layers: number } | null = null;
const speeds: number[] = [];
let shards: TabShards | undefined;
let modelShards: string[] = [];
let engine: ChatEngine | undefined;
let layers = 0;
let experts = 0;
let totalBytes = 0;
let chatMode = false;

function fail(message: string): void {
  state.errors.push(message);
  const div = document.createElement('div');
  div.className = 'notice err';
  div.textContent = message;
  $('errors').append(div);
}

async function getJson<T>(path: string): Promise<T> {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return (await r.json()) as T;
}

function backendChoice(param: string | null): BackendChoice {
  const choices: BackendChoice[] = ['auto', 'webgpu', 'wasm', 'cpu'];
  if (param === null) return 'auto';
  if (!(choices as string[]).includes(param)) throw new Error(`?backend= must be one of ${choices.join(', ')}, got "${param}"`);
  return param as BackendChoice;
}

function rememberedVerdict(): { name: 'wasm' | 'cpu'; because: string } | null {
  try {
    const v = JSON.parse(localStorage.getItem(VERDICT_KEY) ?? 'null') as { name?: unknown; because?: unknown } | null;
    if ((v?.name === 'wasm' || v?.name === 'cpu') && typeof v.because === 'string') return { name: v.name, because: v.because };
  } catch {
    // a damaged entry is measured again
  }
  localStorage.removeItem(VERDICT_KEY);
  return null;
}

async function open(config: ServerConfig, modelId: string, models: ModelRow[]): Promise<void> {
  if (!/^[0-9a-f]{64}$/.test(modelId)) throw new Error(`"${modelId}" is not a model id (a model id is 64 hex digits, the BLAKE3 of its manifest)`);
  state.modelId = modelId;
  const listed = models.find((m) => m.id === modelId);
  $('loading').classList.remove('hidden');
  $('modelname').textContent = listed?.name || modelId.slice(0, 16);
  const budgetMiB = Number(localStorage.getItem('doppler.budgetMiB') ?? 1024);
  $<HTMLInputElement>('budget').value = String(budgetMiB);
  const t0 = performance.now();
  state.phase = 'manifest';
  step('manifest', 'active');
  // Probing WebGPU costs a warm start much of its time; a browser that ran on a CPU path is remembered.
  const choice = backendChoice(new URL(location.href).searchParams.get('backend'));
  const remembered = choice === 'auto' ? rememberedVerdict() : null;
  engine = workerEngine((h) => shards!.get(h), {
    phase: (p) => {
      state.phase = p;
      state.marks[p] = performance.now() - t0;
      if (p === 'weights') step('weights', 'active');
      if (p === 'tokenizer') step('tokenizer', 'active');
      if (p === 'pipeline') {
        step('weights', 'done', $('s-weights-d').textContent ?? '');
        step('tokenizer', 'done');
        step('pipeline', 'active');
      }
    },
    backend: (report) => {
      state.marks.backend = performance.now() - t0;
      if (choice === 'auto' && !remembered && report.cpuBecause && report.name !== 'webgpu') {
        localStorage.setItem(VERDICT_KEY, JSON.stringify({ name: report.name, because: report.cpuBecause }));
      }
      state.backend = report.name;
      state.backendNote = report.note;
      state.engine = report;
      $('whoami').textContent = `engine: ${report.engine} in a Web Worker`;
      if (report.note) notice($('backendnote'), report.name === 'webgpu' ? 'info' : 'warn', report.note);
    },
    token: (text, used, storage) => onToken(text, used, storage),
    storage: (st) => (lastStorage = st),
    error: (m) => fail(m),
  });
  engine.prepare(remembered?.name ?? choice, remembered ? `${remembered.because} (remembered from this browser's last visit)` : null);
  const progress = $('progress').firstElementChild as HTMLElement;
  let done = 0;
  shards = await TabShards.open(config, modelId, budgetMiB * 2 ** 20, (e) => {
    done++;
    state.shardLog.push(e);
    const from = e.from[0] === 'opfs' ? 'OPFS' : e.from.map((p) => (p === config.peerId ? `server ${p.slice(-6)}` : `tab ${p.slice(-6)}`)).join(' + ');
    $('shardlog').textContent = `${e.hash.slice(0, 10)}  ${formatBytes(e.bytes).padStart(8)}  ${e.ms.toFixed(0).padStart(5)} ms  ${from}\n` + $('shardlog').textContent;
    if (totalBytes > 0) progress.style.width = `${Math.min(100, (100 * (shards!.counters.opfsBytes + shards!.counters.networkBytes)) / totalBytes)}%`;
    // The step's figures describe the load; later fetches (keeping the whole model) show in the views.
    if (state.phase === 'ready') return;
    const c = shards!.counters;
    const secs = (performance.now() - t0) / 1000;
    $('s-weights-d').textContent = `${done} shards · ${formatBytes(c.opfsBytes)} from OPFS · ${formatBytes(c.networkBytes)} from peers (${formatBytes(c.networkBytes / Math.max(secs, 1e-3))}/s)`;
  });
  void shards.joined().then((p) => (state.peerId = p.id), (err: Error) => {
    if (!shards?.manifestWasLocal) fail(`could not join the swarm: ${err.message}`);
  });
  if (!listed && !shards.manifestWasLocal) throw new Error(`model ${modelId} is not in this swarm (no peer has registered it) and this tab has not stored it`);
  const manifestFrom = shards.manifestWasLocal ? 'OPFS' : 'a peer in the swarm';
  state.marks.opfs = performance.now() - t0;
  const manifest = await shards.manifestBytes();
  state.marks.manifest = performance.now() - t0;
  step('manifest', 'done', `${formatBytes(manifest.length)} from ${manifestFrom}`);
  totalBytes = listed?.bytes ?? 0;
  const ready = await engine.load(modelId, manifest);
  layers = ready.numLayers;
  chatMode = ready.hasChatTemplate;
  experts = ready.numExperts;
  progress.style.width = '100%';
  if (state.marks.pipeline === undefined) step('weights', 'done', $('s-weights-d').textContent ?? '');
  step('tokenizer', 'done');
  step('pipeline', 'done', state.backend !== 'webgpu' ? 'nothing to compile on the CPU' : '');
  state.loadMs = performance.now() - t0;
  state.loadCounters = { ...shards.counters };
  state.warm = shards.counters.networkBytes === 0;
  void keepWholeModel(shards);
  redraw();
  state.phase = 'ready';
  $('loadtitle').textContent = 'Loaded';
  showLoadTime(modelId, state.loadMs, state.warm);
  $('chat').classList.remove('hidden');
  notice($('templatenote'), 'info', ready.hasChatTemplate
    ? 'This model\'s own chat template shapes the conversation; each turn reuses the KV cache of the ones before.'
    : 'This model has no chat template: it continues the text — everything so far plus what you type — as plain text; it does not answer as an assistant.');
  $<HTMLTextAreaElement>('input').focus();
}

/**
 * After the model is ready, the rest of it is fetched into OPFS in the background (within the
 * budget), so this tab can serve every shard to other tabs and answer any prompt offline.
 */
async function keepWholeModel(s: TabShards): Promise<void> {
  const note = $('keepnote');
  try {
    const peer = await s.joined();
    const m = await peer.getManifest();
    modelShards = shardListOf(m).map((x) => x.hash);
    if (m.totals.bytes > s.storage.budgetBytes) {
      note.textContent = `The OPFS budget is smaller than the model (${formatBytes(m.totals.bytes)}): only the experts used are kept.`;
      return;
    }
    note.textContent = 'Keeping the whole model in this browser so other tabs can fetch it from here …';
    await peer.fetchAll({ concurrency: 2 });
    note.textContent = 'This tab holds the whole model and serves it to the swarm.';
  } catch (err) {
    note.textContent = `Could not keep the whole model: ${(err as Error).message}`;
  }
}

function showLoadTime(modelId: string, ms: number, warm: boolean): void {
  const key = `doppler.cold.${modelId}`;
  if (!warm) localStorage.setItem(key, String(ms));
  const cold = Number(localStorage.getItem(key) ?? NaN);
  $('loadtime').textContent = warm
    ? `warm load from OPFS: ${ms.toFixed(0)} ms, no shard bytes from the network${Number.isFinite(cold) ? ` (cold load was ${(cold / 1000).toFixed(1)} s)` : ''}`
    : `cold load from the swarm: ${(ms / 1000).toFixed(1)} s; reload for a warm start from OPFS`;
}

let replyEl: HTMLElement | null = null;

function onToken(text: string, used: number[][], storage: StoreStats): void {
  replyEl?.append(text);
  recentExperts.push(used);
  if (recentExperts.length > HEAT_TOKENS) recentExperts.shift();
  lastStorage = storage;
}

function turn(kind: 'user' | 'model', text: string): HTMLElement {
  const div = document.createElement('div');
  div.className = `turn ${kind}`;
  div.textContent = text;
  $('transcript').append(div);
  return div;
}

async function sendMessage(): Promise<void> {
  const input = $<HTMLTextAreaElement>('input');
  const text = input.value;
  if (!engine || !text.trim() || !$<HTMLButtonElement>('stop').disabled) return;
  input.value = '';
  turn('user', text);
  const model = turn('model', '');
  const prefix = document.createElement('span');
  prefix.className = 'meta';
  // Without a template the model continues the user's text: show it as the start of the line.
  prefix.textContent = chatMode ? '' : text;
  replyEl = document.createElement('span');
  replyEl.className = 'cont';
  model.append(prefix, replyEl);
  $<HTMLButtonElement>('send').disabled = true;
  $<HTMLButtonElement>('stop').disabled = false;
  const num = (id: string) => Number($<HTMLInputElement>(id).value);
  try {
    const reply = await engine.send(text, { maxTokens: num('maxnew'), temperature: num('temp'), topP: num('topp'), seed: num('seed') });
    state.replies.push(reply);
    speeds.push(reply.stats.decodeTokPerS);
    lastTtft = reply.stats.ttftMs;
    lastPrefetch = reply.stats.prefetch?.nextLayer ?? null;
    const st = reply.stats;
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.textContent = `${reply.ids.length} tokens · prompt ${reply.promptTokens} tokens (${st.reusedTokens} reused from the KV cache, ${st.prefilledTokens} prefilled) · ` +
      `TTFT ${st.ttftMs.toFixed(0)} ms · ${st.decodeTokPerS.toFixed(1)} tok/s${reply.finishReason === 'abort' ? ' · stopped' : reply.finishReason === 'stop' ? ' · end of text' : ''}`;
    model.append(meta);
  } catch (err) {
    fail((err as Error).message);
  } finally {
    replyEl = null;
    $<HTMLButtonElement>('send').disabled = false;
    $<HTMLButtonElement>('stop').disabled = true;
  }
}

let lastTraffic: Record<string, { up: number; down: number }> = {};
let lastTick = performance.now();

function redraw(): void {
  const now = performance.now();
  const dt = Math.max((now - lastTick) / 1000, 1e-3);
  lastTick = now;
  const peer = shards?.swarm ?? null;
  const st = peer?.stats();
  state.traffic = st?.traffic ?? {};
  state.banned = st?.banned ?? [];
  state.signaling = st?.signaling ?? null;
  state.swarmStatus = swarmStatus(st?.signaling ?? null, shards && (!peer || peer.peers().length === 0) ? shards.waiting : 0);
  $('swarmstatus').textContent = state.swarmStatus ?? '';
  $('swarmstatus').className = state.swarmStatus ? 'notice warn' : '';
  if (shards) {
    const storage = shards.storage;
    state.heldShards = modelShards.filter((h) => storage.has(h)).length;
    state.totalShards = modelShards.length;
    state.opfsBytes = storage.usedBytes();
    state.opfsBudget = storage.budgetBytes;
  }
  state.counters = shards ? { ...shards.counters } : null;
  const s = lastStorage;
  const c = shards?.counters;
  const rate = (hits: number, misses: number) => (hits + misses > 0 ? `${((100 * hits) / (hits + misses)).toFixed(0)}% hits` : 'no requests yet');
  drawTiers($<HTMLCanvasElement>('tiers'), [
    { label: 'VRAM', used: s?.vram?.residentBytes ?? 0, budget: s?.vram?.budgetBytes ?? null, note: s?.vram ? `${rate(s.vram.hits, s.vram.misses)} · ${s.vram.entries} shards${lastPrefetch?.layers ? ` · prefetch ${(100 * lastPrefetch.precision).toFixed(0)}% right` : ''}` : 'experts on the device', color: '#8b5cf6' },
    { label: 'RAM', used: s?.ram.residentBytes ?? 0, budget: s?.ram.budgetBytes ?? null, note: s ? `${rate(s.ram.hits, s.ram.misses)}` : 'worker memory', color: '#3b82f6' },
    { label: 'OPFS', used: shards?.storage.usedBytes() ?? 0, budget: shards?.storage.budgetBytes ?? null, note: c ? `${c.opfsHits} shards read this session${c.corrupt ? ` · ${c.corrupt} corrupt files dropped` : ''}` : 'this tab\'s disk', color: '#10b981' },
    { label: 'swarm', used: c?.networkBytes ?? 0, budget: null, note: c ? `${c.networkShards} shards fetched · ${formatBytes(st?.uploadedBytes ?? 0)} served to others` : 'peers', color: '#f59e0b' },
  ]);
  const counts = Array.from({ length: layers }, () => new Array<number>(experts).fill(0));
  for (const tok of recentExperts) tok.forEach((es, l) => es.forEach((e) => counts[l] && counts[l]![e] !== undefined && counts[l]![e]!++));
  drawHeatmap($<HTMLCanvasElement>('heat'), counts, recentExperts.length);
  const known = Object.fromEntries((peer?.peers() ?? []).map((id) => [id, { up: 0, down: 0 }]));
  const rows: PeerRow[] = Object.entries({ ...known, ...state.traffic }).map(([id, t]) => ({
    label: `${id === shardsConfig?.peerId ? 'server' : 'tab'} …${id.slice(-6)}`,
    up: t.up, down: t.down,
    upRate: Math.max(0, t.up - (lastTraffic[id]?.up ?? 0)) / dt,
    downRate: Math.max(0, t.down - (lastTraffic[id]?.down ?? 0)) / dt,
  }));
  lastTraffic = state.traffic;
  drawPeers($<HTMLCanvasElement>('peers'), rows);
  drawSpeed($<HTMLCanvasElement>('speed'), speeds, lastTtft);
  if (shards) {
    const problem = shards.storageProblem ? ` · ${shards.counters.notStored} shards could not be stored (${shards.storageProblem.replace(/^keeping shard \w+: /, '')})` : '';
    $('opfsused').textContent = `${formatBytes(shards.storage.usedBytes())} stored in this browser${problem}`;
  }
}

/** What the page says while the server is unreachable (backing off) or shards wait with no peer to ask. */
function swarmStatus(sig: SignalingStatus | null, waitingWithoutPeers: number): string | null {
  const secs = sig?.retryAt ? Math.ceil((sig.retryAt - Date.now()) / 1000) : 0;
  const server = sig && sig.failures > 0 ? `server unreachable, ${secs > 0 ? `retrying in ${secs} s` : 'retrying now'} (try ${sig.failures + 1})` : null;
  if (waitingWithoutPeers > 0) {
    const what = `Waiting for ${waitingWithoutPeers} shard${waitingWithoutPeers > 1 ? 's' : ''}, but no peer of this model is reachable`;
    return `${what}${server ? ` (${server})` : ''}; this resumes when one answers.`;
  }
  return server ? `The ${server}; the model keeps running from what this tab holds.` : null;
}

let shardsConfig: ServerConfig | null = null;

async function start(): Promise<void> {
  const [config, models] = await Promise.all([getJson<ServerConfig>('/api/config'), getJson<ModelRow[]>('/api/models')]);
  shardsConfig = config;
  renderModels(models);
  $('open').onclick = () => navigateTo($<HTMLInputElement>('modelid').value);
  $('send').onclick = () => void sendMessage();
  $('stop').onclick = () => engine?.stop();
  $('reset').onclick = () => {
    engine?.reset();
    $('transcript').innerHTML = '';
  };
  $('input').onkeydown = (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      void sendMessage();
    }
  };
  $<HTMLInputElement>('budget').onchange = () => {
    const mib = Math.max(1, Number($<HTMLInputElement>('budget').value));
    localStorage.setItem('doppler.budgetMiB', String(mib));
    void shards?.storage.setBudget(mib * 2 ** 20);
  };
  setInterval(redraw, 500);
  redraw();
  const wanted = new URL(location.href).searchParams.get('model');
  if (wanted) {
    try {
      await open(config, wanted, models);
    } catch (err) {
      state.phase = 'failed';
      fail((err as Error).message);
    }
  }
}

void start().catch((err: Error) => fail(`could not reach the server: ${err.message}`));
