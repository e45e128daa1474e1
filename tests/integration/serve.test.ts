/**
 * `doppler serve` through the official `openai` client (CPU backend): the demo model (no chat
 * template) and the same weights with a chat template. Answers equal `doppler generate` on the
 * rendered prompt, streamed or not; usage counts; concurrent clients; a disconnecting client
 * frees the model; a second turn reuses the cache and equals a fresh run; bad input gets 4xx in
 * OpenAI's error shape while the server keeps serving; the WebSocket carries the same stream.
 */
import OpenAI from 'openai';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeChatModel } from './chat-model.ts';
import { Cleanup, ROOT, runDoppler } from './swarm-helpers.ts';

const DEMO = join(ROOT, 'models/tiny-moe-text-q8_0');
const KEY = 'sk-doppler-test';
const CHAT = 'tiny-moe-text-chat';
const USER = [{ role: 'user' as const, content: 'In the beginning' }];
/** What the fixture's template makes of USER (tests/unit/engine/chat.test.ts checks the renderer). */
const RENDERED = '<|bos|>user\nIn the beginning<|eos|>\n<|bos|>assistant\n';

interface GenerateJson { input_ids: number[]; generated_ids: number[]; text: string }
async function generate(model: string, prompt: string, n: number): Promise<GenerateJson> {
  const r = await runDoppler(['generate', model, '--prompt', prompt, '--max-new', String(n), '--greedy', '--json', '--backend', 'cpu'], 120_000);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as GenerateJson;
}

async function streamText(s: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>): Promise<{ text: string; finish: string | null }> {
  let text = '';
  let finish: string | null = null;
  for await (const c of s) {
    text += c.choices[0]?.delta.content ?? '';
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  return { text, finish };
}

describe('doppler serve', () => {
  const cleanup = new Cleanup();
  let url: string;
  let chatDir: string;
  let client: OpenAI;

  beforeAll(async () => {
    const m = await makeChatModel();
    cleanup.track(m.root);
    chatDir = m.dir;
    const p = await cleanup.spawn(['serve', DEMO, chatDir, '--backend', 'cpu', '--port', '0', '--api-key', KEY], 1, 120_000);
    url = p.lines[0]!.replace('listening on ', '').trim();
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: KEY, maxRetries: 0, timeout: 120_000 });
  });
  afterAll(() => cleanup.run());

  it('lists its models', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    expect(ids.sort()).toEqual(['tiny-moe-text', CHAT]);
  });

  it('chat, streamed and whole, equals `doppler generate` on the rendered prompt, with usage', async () => {
    const ref = await generate(chatDir, RENDERED, 8);
    const whole = await client.chat.completions.create({ model: CHAT, messages: USER, max_tokens: 8, temperature: 0 });
    expect(whole.choices[0]!.message.content).toBe(ref.text);
    expect(whole.usage).toMatchObject({ prompt_tokens: ref.input_ids.length, completion_tokens: ref.generated_ids.length, total_tokens: ref.input_ids.length + ref.generated_ids.length });
    const streamed = await streamText(await client.chat.completions.create({ model: CHAT, messages: USER, max_tokens: 8, temperature: 0, stream: true }));
    expect(streamed.text).toBe(ref.text);
    expect(streamed.finish).toBe('length');
  });

  it('text completions on the template-less demo model equal `doppler generate`, streamed and whole', async () => {
    const ref = await generate(DEMO, 'In the beginning', 8);
    const whole = await client.completions.create({ model: 'tiny-moe-text', prompt: 'In the beginning', max_tokens: 8, temperature: 0 });
    expect(whole.choices[0]!.text).toBe(ref.text);
    expect(whole.usage!.prompt_tokens).toBe(ref.input_ids.length);
    let text = '';
    let usage: OpenAI.Completions.CompletionUsage | undefined;
    for await (const c of await client.completions.create({ model: 'tiny-moe-text', prompt: 'In the beginning', max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true } })) {
      text += c.choices[0]?.text ?? '';
      usage = c.usage ?? usage;
    }
    expect(text).toBe(ref.text);
    expect(usage!.completion_tokens).toBe(8);
  });

  it('samples reproducibly from a seed', async () => {
    const ask = () => client.chat.completions.create({ model: CHAT, messages: USER, max_tokens: 8, temperature: 0.9, top_p: 0.95, seed: 11 });
    expect((await ask()).choices[0]!.message.content).toBe((await ask()).choices[0]!.message.content);
  });

  it('answers two concurrent clients in turn, each as if alone', async () => {
    const other = [{ role: 'user' as const, content: 'Blessed are the' }];
    const alone = await Promise.all([USER, other].map(async (messages) => (await client.chat.completions.create({ model: CHAT, messages, max_tokens: 24, temperature: 0 })).choices[0]!.message.content));
    const a = client.chat.completions.create({ model: CHAT, messages: USER, max_tokens: 24, temperature: 0, stream: true }).withResponse();
    const b = client.chat.completions.create({ model: CHAT, messages: other, max_tokens: 24, temperature: 0, stream: true }).withResponse();
    const [ra, rb] = await Promise.all([a, b]);
    const [ta, tb] = await Promise.all([streamText(ra.data), streamText(rb.data)]);
    expect([ta.text, tb.text]).toEqual(alone);
    expect([ta.finish, tb.finish]).toEqual(['length', 'length']);
    const positions = [ra.response.headers.get('x-doppler-queue-position'), rb.response.headers.get('x-doppler-queue-position')].sort();
    expect(positions).toEqual(['0', '1']);
  });

  it('a client that disconnects mid-stream frees the model for the next one', async () => {
    const long = await client.chat.completions.create({ model: CHAT, messages: USER, max_tokens: 1000, temperature: 0, stream: true });
    let chunks = 0;
    // leaving the loop early makes the client abort its request
    for await (const _ of long) if (++chunks === 3) break;
    const t0 = Date.now();
    const next = await client.chat.completions.create({ model: CHAT, messages: USER, max_tokens: 4, temperature: 0 });
    expect(next.usage!.completion_tokens).toBe(4);
    // a thousand tokens take far longer than this on the CPU backend; the abandoned one was cancelled
    expect(Date.now() - t0).toBeLessThan(20_000);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/doppler_api_disconnects_total [1-9]/);
    expect(metrics).toContain(`doppler_api_queue_depth{model="${CHAT}"} 0`);
  });

  it('a second turn prefills only its new tokens and equals a fresh run of the whole conversation', async () => {
    const first = await client.chat.completions.create({ model: CHAT, messages: USER, max_tokens: 6, temperature: 0 });
    const reply = first.choices[0]!.message.content!;
    const turn2 = [...USER, { role: 'assistant' as const, content: reply }, { role: 'user' as const, content: 'And then?' }];
    const second = await client.chat.completions.create({ model: CHAT, messages: turn2, max_tokens: 6, temperature: 0 });
    const rendered2 = `${RENDERED}${reply}<|eos|>\n<|bos|>user\nAnd then?<|eos|>\n<|bos|>assistant\n`;
    const fresh = await generate(chatDir, rendered2, 6);
    expect(second.choices[0]!.message.content).toBe(fresh.text);
    expect(second.usage!.prompt_tokens).toBe(fresh.input_ids.length);
    const cached = second.usage!.prompt_tokens_details!.cached_tokens!;
    expect(cached).toBeGreaterThan(first.usage!.prompt_tokens);
    expect(second.usage!.prompt_tokens - cached).toBeLessThan(second.usage!.prompt_tokens / 2);
  });

  it('refuses bad input with 4xx and OpenAI-style errors, and keeps serving', async () => {
    const raw = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: '{"model": "x", messages: [' });
    expect(raw.status).toBe(400);
    expect((await raw.json() as { error: { message: string; type: string } }).error).toMatchObject({ type: 'invalid_request_error', message: expect.stringMatching(/not valid JSON/) });

    await expect(client.chat.completions.create({ model: 'no-such-model', messages: USER })).rejects.toMatchObject({ status: 404, code: 'model_not_found' });
    const wrongKey = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
    await expect(wrongKey.chat.completions.create({ model: CHAT, messages: USER })).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    await expect(client.chat.completions.create({ model: CHAT, messages: USER, max_tokens: 5000 })).rejects.toMatchObject({ status: 400, code: 'context_length_exceeded' });
    await expect(client.chat.completions.create({ model: CHAT, messages: [{ role: 'wizard', content: 'hi' }] as never })).rejects.toMatchObject({ status: 400, param: 'messages' });
    await expect(client.chat.completions.create({ model: 'tiny-moe-text', messages: USER })).rejects.toMatchObject({ status: 400, code: 'no_chat_template' });
    await expect(client.chat.completions.create({ model: CHAT, messages: USER, temperature: 7 })).rejects.toMatchObject({ status: 400, param: 'temperature' });
    await expect(client.chat.completions.create({ model: CHAT, messages: USER, tools: [{ type: 'function', function: { name: 'f' } }] })).rejects.toMatchObject({ status: 400, param: 'tools' });

    const ok = await client.chat.completions.create({ model: CHAT, messages: USER, max_tokens: 2, temperature: 0 });
    expect(ok.usage!.completion_tokens).toBe(2);
    expect(await (await fetch(`${url}/health`)).json()).toMatchObject({ status: 'ok' });
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/doppler_api_requests_total\{path="\/v1\/chat\/completions",status="404"\} 1/);
  });

  it('streams the same chunks over a WebSocket', async () => {
    const whole = await client.chat.completions.create({ model: CHAT, messages: USER, max_tokens: 8, temperature: 0 });
    const refused = new WebSocket(`${url.replace('http', 'ws')}/v1/ws?api_key=wrong`);
    await new Promise((resolve) => refused.addEventListener('error', resolve));
    const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/ws?api_key=${KEY}`);
    await new Promise((resolve, reject) => {
      ws.addEventListener('open', resolve);
      ws.addEventListener('error', reject);
    });
    const messages: string[] = [];
    const done = new Promise<void>((resolve) => ws.addEventListener('message', (e) => {
      messages.push(String(e.data));
      if (e.data === '[DONE]') resolve();
    }));
    ws.send('not json');
    ws.send(JSON.stringify({ endpoint: 'chat.completions', model: CHAT, messages: USER, max_tokens: 8, temperature: 0 }));
    await done;
    ws.close();
    expect(JSON.parse(messages[0]!)).toMatchObject({ error: { type: 'invalid_request_error' } });
    const chunks = messages.slice(1, -1).map((m) => JSON.parse(m) as OpenAI.Chat.Completions.ChatCompletionChunk);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(whole.choices[0]!.message.content);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('length');
  });
});
