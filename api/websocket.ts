/**
 * The server's WebSocket side at /v1/ws, on the `ws` package (handshake, framing, ping and limits
 * are its job). Ours is the session: one request at a time per socket, `{"endpoint":
 * "chat.completions" | "completions", ...body}` in, each chunk as a text message out, then
 * `[DONE]`; errors as `{"error": …}`. Closing the socket cancels the generation.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { ApiError, toApiError } from './errors.ts';
import type { ApiMetrics } from './metrics.ts';
import type { Run, Usage } from './openai.ts';
import type { RequestQueue } from './queue.ts';

/** A message larger than this closes the socket with 1009 (the HTTP side's body limit, too). */
const MAX_MESSAGE = 1 << 20;

export type Endpoint = 'chat.completions' | 'completions';

/** What the server gives a socket: how to start a request, and where to count. */
export interface WsContext {
  start(endpoint: Endpoint, body: unknown, signal: AbortSignal): { model: string; queue: RequestQueue; begin: () => Run<unknown, unknown> };
  countUsage(model: string, u: Usage | undefined): void;
  metrics: ApiMetrics;
}

/** Answers `upgrade` requests the server has already routed and authorized; `close()` ends every socket. */
export function webSocketEndpoint(ctx: WsContext): { upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void; close(): void } {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE });
  return {
    upgrade: (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => session(ws, ctx)),
    close: () => {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
    },
  };
}

function session(ws: WebSocket, ctx: WsContext): void {
  const send = (text: string) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(text);
  };
  let ctl: AbortController | null = null;
  const run = async (text: string) => {
    ctl = new AbortController();
    const signal = ctl.signal;
    try {
      const { endpoint, body } = parseMessage(text);
      const { model, queue, begin } = ctx.start(endpoint, body, signal);
      const release = await queue.acquire(signal);
      try {
        for await (const chunk of begin().chunks()) {
          send(JSON.stringify(chunk));
          ctx.countUsage(model, (chunk as { usage?: Usage }).usage);
        }
        send('[DONE]');
      } finally {
        release();
      }
    } catch (err) {
      if (!signal.aborted) send(JSON.stringify(toApiError(err).body()));
    } finally {
      ctl = null;
    }
  };
  ws.on('message', (data, isBinary) => {
    if (isBinary) return ws.close(1003, 'text messages only');
    if (ctl) return send(JSON.stringify(new ApiError(409, 'one request at a time on a socket; wait for [DONE]').body()));
    void run(data.toString());
  });
  // protocol errors (an unmasked frame, a message over the limit) arrive here after `ws` has
  // already closed the socket with the right code; unheard, they would crash the server
  ws.on('error', () => {});
  ws.on('close', () => {
    if (!ctl) return;
    ctx.metrics.count('doppler_api_disconnects_total', {});
    ctl.abort(new Error('the socket closed'));
  });
}

function parseMessage(text: string): { endpoint: Endpoint; body: Record<string, unknown> } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, 'the message is not JSON', { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ApiError(400, 'the message must be a JSON object');
  const { endpoint = 'chat.completions', ...body } = parsed as Record<string, unknown>;
  if (endpoint !== 'chat.completions' && endpoint !== 'completions') throw new ApiError(400, 'endpoint must be "chat.completions" or "completions"', { param: 'endpoint' });
  return { endpoint, body };
}
