/**
 * The in-tab API: `createEngine` opens a model and answers `chat.completions.create()` in the
 * shape of OpenAI's client (and WebLLM's in-page engine), so a page written for those runs on
 * Doppler with a changed import. Browser-safe; runs in a worker as well as in the page.
 */
import {
  ChatSession, openModel, type Engine, type LoadProgress, type ManifestPlace, type ManifestSource, type ModelBudgets,
} from '../engine/index.ts';
import { createCpuBackend, createWebGpuBackend, type Backend } from '../kernels/index.ts';
import { HttpSource, type PersistentBackend, type ShardSource } from '../storage/index.ts';
import { toApiError } from './errors.ts';
import { OpenAiModel, type ChatCompletion, type ChatCompletionChunk, type Completion, type CompletionChunk } from './openai.ts';
import { parseChatRequest, parseCompletionRequest } from './request.ts';

export interface CreateEngineOptions {
  /** An http(s) URL of a served model directory, or a source that serves its manifest and shards (a swarm peer). */
  model: string | ManifestSource;
  /** The model id to insist on (BLAKE3 of the manifest). */
  modelId?: string;
  /** Default: WebGPU when it can be opened, else the TypeScript backend. */
  backend?: Backend;
  budgets?: ModelBudgets;
  /** Where shards are kept across loads (OPFS); a manifest cache goes in `manifestCache`. */
  persistent?: PersistentBackend;
  manifestCache?: { read(): Promise<Uint8Array>; write(bytes: Uint8Array): Promise<void> };
  /** Further shard sources after the model's own (other origins, peers). */
  sources?: ShardSource[];
  /** KV cache positions of the chat session (default: the model's context, at most 4096). */
  contextTokens?: number;
  signal?: AbortSignal;
  onProgress?: (p: LoadProgress) => void;
}

/** OpenAI's request body, plus an AbortSignal; `model` may be left out (the loaded one answers). */
export type ChatCreateParams = Record<string, unknown> & { messages: unknown[]; stream?: boolean; signal?: AbortSignal };
export type CompletionCreateParams = Record<string, unknown> & { prompt: unknown; stream?: boolean; signal?: AbortSignal };

export interface DopplerEngine {
  readonly modelId: string;
  /** Where the kernels run: 'webgpu', or 'cpu' (the TypeScript backend, also the fallback without WebGPU). */
  readonly backend: string;
  readonly engine: Engine;
  readonly session: ChatSession;
  chat: {
    completions: {
      create(p: ChatCreateParams & { stream: true }): Promise<AsyncIterable<ChatCompletionChunk>>;
      create(p: ChatCreateParams & { stream?: false }): Promise<ChatCompletion>;
      create(p: ChatCreateParams): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>>;
    };
  };
  completions: {
    create(p: CompletionCreateParams & { stream: true }): Promise<AsyncIterable<CompletionChunk>>;
    create(p: CompletionCreateParams & { stream?: false }): Promise<Completion>;
    create(p: CompletionCreateParams): Promise<Completion | AsyncIterable<CompletionChunk>>;
  };
  /** Stops the reply being generated (WebLLM's name for it); the session stays usable. */
  interruptGenerate(): void;
  /** Forgets the cached conversation. */
  resetChat(): Promise<void>;
  unload(): Promise<void>;
}

async function defaultBackend(): Promise<Backend> {
  try {
    return await createWebGpuBackend();
  } catch {
    return createCpuBackend();
  }
}

/**
 * @example
 * const engine = await createEngine({ model: 'https://example.org/models/tiny', onProgress: (p) => console.log(p) });
 * const chunks = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }], stream: true });
 * for await (const c of chunks) out.textContent += c.choices[0]?.delta.content ?? '';
 */
export async function createEngine(opts: CreateEngineOptions): Promise<DopplerEngine> {
  const remote: ManifestSource = typeof opts.model === 'string' ? new HttpSource(opts.model) : opts.model;
  const manifestFrom: ManifestPlace[] = [];
  const cache = opts.manifestCache;
  if (cache) manifestFrom.push({ name: 'manifest cache', isCache: true, getManifest: () => cache.read() });
  manifestFrom.push({ name: remote.name ?? 'the model source', getManifest: () => remote.getManifest() });
  const backend = opts.backend ?? await defaultBackend();
  const opened = await openModel({
    backend,
    manifestFrom,
    ...(cache ? { keepManifest: (b) => cache.write(b) } : {}),
    ...(opts.modelId ? { modelId: opts.modelId } : {}),
    sources: [remote, ...(opts.sources ?? [])],
    ...(opts.persistent ? { persistent: opts.persistent } : {}),
    ...(opts.budgets ? { budgets: opts.budgets } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  const session = new ChatSession(opened.engine, opts.contextTokens !== undefined ? { contextTokens: opts.contextTokens } : {});
  return wrap(new OpenAiModel(opened.engine.modelId, session), backend.name, async () => {
    await session.close();
    await opened.close();
  });
}

/** The OpenAI-shaped object around a loaded model (also for callers that opened the model themselves). */
export function wrap(model: OpenAiModel, backend: string, close: () => Promise<void>): DopplerEngine {
  let current: AbortController | null = null;
  // each request gets its own controller, so interruptGenerate() stops the latest one only
  const run = async <C, F>(start: (signal: AbortSignal) => { chunks(): AsyncIterable<C>; final(): Promise<F> }, p: { stream?: boolean; signal?: AbortSignal }) => {
    const ctl = new AbortController();
    current = ctl;
    let r;
    try {
      r = start(p.signal ? AbortSignal.any([p.signal, ctl.signal]) : ctl.signal);
    } catch (err) {
      throw toApiError(err);
    }
    return p.stream === true ? r.chunks() : r.final();
  };
  const body = (p: Record<string, unknown>) => ({ ...p, model: p.model ?? model.id, signal: undefined });
  const chatCreate = (p: ChatCreateParams) => run((signal) => model.chat(parseChatRequest(body(p)), signal), p);
  const completionCreate = (p: CompletionCreateParams) => run((signal) => model.completion(parseCompletionRequest(body(p)), signal), p);
  return {
    modelId: model.id,
    backend,
    engine: model.session.engine,
    session: model.session,
    chat: { completions: { create: chatCreate as DopplerEngine['chat']['completions']['create'] } },
    completions: { create: completionCreate as DopplerEngine['completions']['create'] },
    interruptGenerate: () => current?.abort(),
    resetChat: () => model.session.reset(),
    unload: close,
  };
}
