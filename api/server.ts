/**
 * The OpenAI-compatible HTTP server: POST /v1/chat/completions and /v1/completions (server-sent
 * events or one JSON body), GET /v1/models, the same streams over a WebSocket at /v1/ws, /health
 * and Prometheus /metrics. Each model answers one request at a time, in arrival order; a client
 * that goes away cancels its generation (or leaves the queue).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { ApiError, toApiError } from './errors.ts';
import { ApiMetrics } from './metrics.ts';
import type { OpenAiModel, Run, Usage } from './openai.ts';
import { RequestQueue } from './queue.ts';
import { parseChatRequest, parseCompletionRequest } from './request.ts';
import { webSocketEndpoint, type Endpoint } from './websocket.ts';

export interface ApiServerOptions {
  models: OpenAiModel[];
  port?: number;
  host?: string;
  /** Clients must send `Authorization: Bearer <key>` (or `?api_key=` on the WebSocket). */
  apiKey?: string;
  /** Largest request body accepted (default 1 MiB). */
  maxBodyBytes?: number;
}

export interface ApiServer {
  readonly url: string;
  readonly port: number;
  readonly metrics: ApiMetrics;
  close(): Promise<void>;
}

interface Served {
  model: OpenAiModel;
  queue: RequestQueue;
}

/**
 * @example
 * const server = await startApiServer({ models: [new OpenAiModel('tiny', new ChatSession(engine))], port: 8000 });
 * // POST http://127.0.0.1:8000/v1/chat/completions  {"model":"tiny","messages":[…],"stream":true}
 */
export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const served = new Map<string, Served>();
  for (const model of opts.models) {
    const s = { model, queue: new RequestQueue() };
    // a client may name the model by its name or by its id (the manifest's BLAKE3)
    for (const name of new Set([model.id, model.session.engine.modelId])) {
      if (served.has(name)) throw new ApiError(500, `two served models are both called "${name}"`);
      served.set(name, s);
    }
  }
  const metrics = apiMetrics(opts.models, served);
  const maxBody = opts.maxBodyBytes ?? 1 << 20;

  const authorized = (req: IncomingMessage, url: URL) => opts.apiKey === undefined
    || req.headers.authorization === `Bearer ${opts.apiKey}` || url.searchParams.get('api_key') === opts.apiKey;

  const lookup = (name: string): Served => {
    const s = served.get(name);
    if (!s) throw new ApiError(404, `model "${name}" is not served here; GET /v1/models lists what is`, { param: 'model', code: 'model_not_found' });
    return s;
  };

  const start = (endpoint: Endpoint, body: unknown, signal: AbortSignal): { s: Served; begin: () => Run<unknown, unknown>; stream: boolean } => {
    const req = endpoint === 'chat.completions' ? parseChatRequest(body) : parseCompletionRequest(body);
    const s = lookup(req.model);
    const begin = () => (endpoint === 'chat.completions'
      ? s.model.chat(req as ReturnType<typeof parseChatRequest>, signal)
      : s.model.completion(req as ReturnType<typeof parseCompletionRequest>, signal)) as Run<unknown, unknown>;
    return { s, begin, stream: req.stream };
  };

  const countUsage = (model: string, u: Usage | undefined) => {
    if (!u) return;
    metrics.count('doppler_api_prompt_tokens_total', { model }, u.prompt_tokens);
    metrics.count('doppler_api_cached_prompt_tokens_total', { model }, u.prompt_tokens_details.cached_tokens);
    metrics.count('doppler_api_completion_tokens_total', { model }, u.completion_tokens);
  };

  async function completions(endpoint: Endpoint, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJson(req, maxBody);
    const ctl = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) {
        metrics.count('doppler_api_disconnects_total', {});
        ctl.abort(new Error('the client disconnected'));
      }
    });
    const { s, begin, stream } = start(endpoint, body, ctl.signal);
    const ahead = s.queue.depth;
    const t0 = performance.now();
    let release: () => void;
    try {
      release = await s.queue.acquire(ctl.signal);
    } catch {
      return; // the client left while queued
    }
    try {
      const run = begin();
      const headers = {
        'x-doppler-queue-position': String(ahead),
        'x-doppler-queue-wait-ms': (performance.now() - t0).toFixed(0),
        'x-doppler-concurrency': '1',
        'x-doppler-prompt-tokens': String(run.promptTokens),
      };
      if (!stream) {
        const out = await run.final() as { usage?: Usage };
        countUsage(s.model.id, out.usage);
        return sendJson(res, 200, out, headers);
      }
      res.writeHead(200, { ...headers, 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      res.flushHeaders();
      try {
        for await (const chunk of run.chunks()) {
          if (ctl.signal.aborted) break;
          res.write(`data: ${JSON.stringify(chunk)}\n\n`);
          countUsage(s.model.id, (chunk as { usage?: Usage }).usage);
        }
        res.end('data: [DONE]\n\n');
      } catch (err) {
        // headers are gone: the error travels as an event, as OpenAI's streams send them
        res.end(`data: ${JSON.stringify(toApiError(err).body())}\n\n`);
      }
    } finally {
      release();
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (path === '/health') return sendJson(res, 200, { status: 'ok', models: opts.models.map((m) => ({ id: m.id, queued: lookup(m.id).queue.depth })) });
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      return void res.end(metrics.text());
    }
    if (!path.startsWith('/v1/')) throw new ApiError(404, `no route ${req.method} ${path}`);
    if (!authorized(req, url)) throw new ApiError(401, 'a valid API key is required (Authorization: Bearer <key>)', { code: 'invalid_api_key' });
    const endpoint: Endpoint | null = path === '/v1/chat/completions' ? 'chat.completions' : path === '/v1/completions' ? 'completions' : null;
    if (endpoint) {
      if (req.method !== 'POST') throw new ApiError(405, `${path} takes POST`);
      return completions(endpoint, req, res);
    }
    if (path === '/v1/models' && req.method === 'GET') {
      return sendJson(res, 200, { object: 'list', data: opts.models.map((m) => ({ id: m.id, object: 'model', created: m.created, owned_by: 'doppler', doppler_model_id: m.session.engine.modelId })) });
    }
    throw new ApiError(404, `no route ${req.method} ${path}`);
  }

  const server = createServer((req, res) => {
    const endpoint = (req.url ?? '/').split('?')[0]!;
    route(req, res).then(
      () => metrics.count('doppler_api_requests_total', { path: endpoint, status: String(res.statusCode) }),
      (err: unknown) => {
        const e = toApiError(err);
        metrics.count('doppler_api_requests_total', { path: endpoint, status: String(e.status) });
        if (!res.headersSent) sendJson(res, e.status, e.body());
        else res.end();
      },
    );
  });

  const ws = webSocketEndpoint({
    start: (endpoint, body, signal) => {
      const { s, begin } = start(endpoint, body, signal);
      return { model: s.model.id, queue: s.queue, begin };
    },
    countUsage,
    metrics,
  });
  // upgraded sockets leave the server's books: closing it must end them too
  const upgraded = new Set<Duplex>();
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/v1/ws') return void socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
    if (!authorized(req, url)) return void socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n');
    ws.upgrade(req, socket, head);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = opts.host ?? '127.0.0.1';
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    metrics,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
      ws.close();
      for (const s of upgraded) s.destroy();
    }),
  };
}

function apiMetrics(models: OpenAiModel[], served: Map<string, Served>): ApiMetrics {
  const m = new ApiMetrics();
  m.describe('doppler_api_requests_total', 'counter', 'HTTP requests by path and status');
  m.describe('doppler_api_disconnects_total', 'counter', 'clients that went away before their answer was complete (their generation was cancelled)');
  m.describe('doppler_api_prompt_tokens_total', 'counter', 'prompt tokens of answered requests');
  m.describe('doppler_api_cached_prompt_tokens_total', 'counter', 'prompt tokens whose KV cache was reused instead of prefilled');
  m.describe('doppler_api_completion_tokens_total', 'counter', 'generated tokens');
  m.describe('doppler_api_queue_depth', 'gauge', 'requests running or waiting per model (each model runs one at a time)');
  m.describe('doppler_api_max_concurrency', 'gauge', 'requests a model runs at once');
  for (const model of models) {
    m.gauge('doppler_api_queue_depth', { model: model.id }, () => served.get(model.id)!.queue.depth);
    m.gauge('doppler_api_max_concurrency', { model: model.id }, () => 1);
  }
  return m;
}

async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > max) throw new ApiError(413, `the request body is larger than ${max} bytes`);
    chunks.push(c as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new ApiError(400, `the request body is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
