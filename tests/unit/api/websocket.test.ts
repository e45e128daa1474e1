/**
 * The server's /v1/ws sessions (the `ws` package does the protocol): chunks then [DONE], errors in
 * OpenAI's shape, one request at a time, text only, the size limit, a closed socket cancels its
 * generation, routing and keys are checked before the upgrade, and closing the server ends sockets.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { OpenAiModel } from '../../../api/index.ts';
import { startApiServer, type ApiServer } from '../../../api/node.ts';

const KEY = 'k';
/** A model that streams `n` chunks, then waits for its signal when `hang` is set. */
function fakeModel() {
  const aborted: unknown[] = [];
  const model = {
    id: 'fake',
    created: 0,
    session: { engine: { modelId: 'fake-id' } },
    completion: (req: { prompt: string | number[] }, signal: AbortSignal) => ({
      promptTokens: 1,
      async *chunks() {
        yield { text: 'a' };
        yield { text: 'b' };
        if (req.prompt === 'hang') {
          await new Promise((resolve) => signal.addEventListener('abort', resolve));
          aborted.push(signal.reason);
        }
      },
      final: () => Promise.reject(new Error('not used')),
    }),
  };
  return { model: model as unknown as OpenAiModel, aborted };
}

function open(url: string): Promise<{ ws: WebSocket; messages: string[]; next: () => Promise<string>; closed: Promise<number> }> {
  const ws = new WebSocket(url);
  const messages: string[] = [];
  const waiting: ((m: string) => void)[] = [];
  ws.on('message', (d) => {
    const w = waiting.shift();
    if (w) w(d.toString());
    else messages.push(d.toString());
  });
  const closed = new Promise<number>((resolve) => ws.on('close', resolve));
  const next = () => (messages.length ? Promise.resolve(messages.shift()!) : new Promise<string>((resolve) => waiting.push(resolve)));
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve({ ws, messages, next, closed }));
    ws.on('error', reject);
  });
}

function refusal(url: string): Promise<number> {
  return new Promise((resolve) => new WebSocket(url).on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)).on('error', () => {}));
}

describe('the /v1/ws endpoint', () => {
  let server: ApiServer;
  let base: string;
  const fake = fakeModel();
  beforeAll(async () => {
    server = await startApiServer({ models: [fake.model], apiKey: KEY });
    base = `${server.url.replace('http', 'ws')}/v1/ws?api_key=${KEY}`;
  });
  afterAll(() => server.close());

  it('checks the path and the key before upgrading', async () => {
    expect(await refusal(`${server.url.replace('http', 'ws')}/v1/ws?api_key=wrong`)).toBe(401);
    expect(await refusal(`${server.url.replace('http', 'ws')}/v1/other?api_key=${KEY}`)).toBe(404);
  });

  it('streams chunks then [DONE], answers bad messages in OpenAI\'s error shape, one request at a time', async () => {
    const c = await open(base);
    c.ws.send('not json');
    expect(JSON.parse(await c.next())).toMatchObject({ error: { type: 'invalid_request_error', message: 'the message is not JSON' } });
    c.ws.send(JSON.stringify({ endpoint: 'embeddings', model: 'fake' }));
    expect(JSON.parse(await c.next())).toMatchObject({ error: { param: 'endpoint' } });
    c.ws.send(JSON.stringify({ endpoint: 'completions', model: 'fake', prompt: 'x' }));
    c.ws.send(JSON.stringify({ endpoint: 'completions', model: 'fake', prompt: 'x' }));
    const got = [await c.next(), await c.next(), await c.next(), await c.next()];
    expect(got.filter((m) => m.includes('one request at a time'))).toHaveLength(1);
    expect(got.filter((m) => !m.includes('error'))).toEqual(['{"text":"a"}', '{"text":"b"}', '[DONE]']);
    c.ws.close();
  });

  it('closes on a binary message (1003) and on one over 1 MiB (1009)', async () => {
    const a = await open(base);
    a.ws.send(Buffer.from([1, 2, 3]));
    expect(await a.closed).toBe(1003);
    const b = await open(base);
    b.ws.send('x'.repeat((1 << 20) + 1));
    expect(await b.closed).toBe(1009);
  });

  it('a closed socket cancels its generation and counts a disconnect; closing the server ends sockets', async () => {
    const c = await open(base);
    c.ws.send(JSON.stringify({ endpoint: 'completions', model: 'fake', prompt: 'hang' }));
    expect(await c.next()).toBe('{"text":"a"}');
    c.ws.close();
    await c.closed;
    for (let i = 0; i < 100 && fake.aborted.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(String(fake.aborted[0])).toContain('the socket closed');
    expect(server.metrics.text()).toMatch(/doppler_api_disconnects_total 1/);

    const d = await open(base);
    await server.close();
    expect(await d.closed).toBe(1006);
  });
});
