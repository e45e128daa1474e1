/**
 * The chat session on the demo model's weights (tiny-moe-text q8_0, CPU backend) with a small
 * ChatML-style template: rendering, KV reuse across turns equal to a single-shot run, stop
 * strings, EOS, abort, context limits, and the demo model (no template) refusing chat by name.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ChatSession, ChatTemplateError, ContextLengthError, Engine, NoChatTemplateError, StopMatcher, type ChatMessage, type ModelSource,
} from '../../../engine/index.ts';
import { modelDirSource } from '../../../engine/node.ts';
import { createCpuBackend, createWebGpuBackend } from '../../../kernels/index.ts';
import { makeChatModel } from '../../integration/chat-model.ts';

const DEMO = new URL('../../../models/tiny-moe-text-q8_0', import.meta.url).pathname;
const CONVERSATION: ChatMessage[] = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'In the beginning' }];

async function drain(reply: AsyncIterable<{ text: string; id: number }>): Promise<{ text: string; ids: number[] }> {
  let text = '';
  const ids: number[] = [];
  for await (const d of reply) {
    text += d.text;
    ids.push(d.id);
  }
  return { text, ids };
}

async function generateIds(engine: Engine, prompt: number[], n: number): Promise<number[]> {
  const out: number[] = [];
  for await (const t of engine.generate(prompt, { maxNewTokens: n })) out.push(t.id);
  return out;
}

describe('ChatSession', () => {
  let root: string;
  let source: ModelSource;
  let engine: Engine;
  beforeAll(async () => {
    const m = await makeChatModel();
    root = m.root;
    source = await modelDirSource(m.dir);
    engine = await Engine.load({ backend: createCpuBackend(), source });
  });
  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('renders the model\'s own template and streams what generate gives for the rendered prompt', async () => {
    const session = new ChatSession(engine);
    const text = session.render(CONVERSATION);
    expect(text).toBe('<|bos|>system\nYou are terse.<|eos|>\n<|bos|>user\nIn the beginning<|eos|>\n<|bos|>assistant\n');
    const reply = session.chat(CONVERSATION, { maxTokens: 8 });
    const streamed = await drain(reply);
    const r = await reply.result;
    const prompt = engine.encode(text);
    expect(streamed.ids).toEqual(await generateIds(engine, prompt, 8));
    expect(r.ids).toEqual(streamed.ids);
    expect(r.text).toBe(streamed.text);
    expect(r.text).toBe(engine.codec!.decode(r.ids));
    expect(r.usage).toEqual({ promptTokens: prompt.length, completionTokens: 8, totalTokens: prompt.length + 8 });
    expect(r.finishReason).toBe('length');
    expect(r.stats.reusedTokens).toBe(0);
    expect(r.stats.prefilledTokens).toBe(prompt.length);
    await session.close();
  });

  it('a second turn prefills only what its prompt adds to the cache and equals a single-shot run', async () => {
    const session = new ChatSession(engine);
    const first = await session.chat(CONVERSATION, { maxTokens: 6 }).result;
    const turn2: ChatMessage[] = [...CONVERSATION, { role: 'assistant', content: first.text }, { role: 'user', content: 'And then?' }];
    const second = await session.chat(turn2, { maxTokens: 6 }).result;
    const prompt2 = engine.encode(session.render(turn2));
    const cached = [...engine.encode(session.render(CONVERSATION)), ...first.ids.slice(0, -1)];
    let common = 0;
    while (common < cached.length && cached[common] === prompt2[common]) common++;
    expect(second.stats.reusedTokens).toBe(common);
    expect(common).toBeGreaterThan(first.usage.promptTokens);
    expect(second.stats.prefilledTokens).toBe(prompt2.length - common);
    expect(second.stats.prefilledTokens).toBeLessThan(prompt2.length / 2);
    const fresh = new ChatSession(engine);
    const single = await fresh.chat(turn2, { maxTokens: 6 }).result;
    expect(single.stats.reusedTokens).toBe(0);
    expect(second.ids).toEqual(single.ids);
    await Promise.all([session.close(), fresh.close()]);
  });

  it('ends before a stop string, which is never shown', async () => {
    const session = new ChatSession(engine);
    const full = await session.complete('In the beginning', { maxTokens: 12 }).result;
    const stop = full.text.slice(5, 9);
    const reply = session.complete('In the beginning', { maxTokens: 12, stop: ['zzz-never', stop] });
    const streamed = await drain(reply);
    const r = await reply.result;
    expect(r.finishReason).toBe('stop');
    expect(r.text).toBe(full.text.slice(0, full.text.indexOf(stop)));
    expect(streamed.text).toBe(r.text);
    await session.close();
  });

  it('ends at EOS without its text', async () => {
    const plain = new ChatSession(engine);
    const greedy = await plain.chat(CONVERSATION, { maxTokens: 6 }).result;
    const eos = greedy.ids[3]!;
    const withEos: ModelSource = { ...source, manifest: { ...source.manifest, config: { ...source.manifest.config, eosTokenIds: [eos] } } };
    const session = new ChatSession(await Engine.load({ backend: createCpuBackend(), source: withEos }));
    const r = await session.chat(CONVERSATION, { maxTokens: 6 }).result;
    expect(r.finishReason).toBe('stop');
    expect(r.ids).toEqual(greedy.ids.slice(0, greedy.ids.indexOf(eos) + 1));
    expect(r.text).toBe(engine.codec!.decode(r.ids.slice(0, -1)));
    await Promise.all([plain.close(), session.close()]);
  });

  it('aborts at once, and the session then answers as a fresh one does', async () => {
    const session = new ChatSession(engine);
    const ctl = new AbortController();
    const reply = session.chat(CONVERSATION, { maxTokens: 200, signal: ctl.signal });
    let seen = 0;
    const t0 = performance.now();
    for await (const _ of reply) {
      if (++seen === 2) ctl.abort();
    }
    const r = await reply.result;
    expect(performance.now() - t0).toBeLessThan(60_000);
    expect(r.finishReason).toBe('abort');
    expect(r.ids.length).toBeLessThan(200);
    const next = await session.chat(CONVERSATION, { maxTokens: 5 }).result;
    const fresh = new ChatSession(engine);
    expect(next.ids).toEqual((await fresh.chat(CONVERSATION, { maxTokens: 5 }).result).ids);
    expect(next.stats.reusedTokens).toBeGreaterThan(0);
    // a signal already aborted ends the turn before it starts
    expect((await session.chat(CONVERSATION, { signal: AbortSignal.abort() }).result).finishReason).toBe('abort');
    expect((await session.chat(CONVERSATION, { maxTokens: 2 }).result).ids).toHaveLength(2);
    await Promise.all([session.close(), fresh.close()]);
  });

  it('refuses prompts and token budgets beyond the context, and unknown roles, by name', async () => {
    const session = new ChatSession(engine, { contextTokens: 30 });
    expect(session.contextTokens).toBe(30);
    const promptTokens = engine.encode(session.render(CONVERSATION)).length;
    expect(() => session.chat(CONVERSATION, { maxTokens: 30 - promptTokens + 1 })).toThrow(ContextLengthError);
    expect(() => session.chat(CONVERSATION, { maxTokens: 30 - promptTokens + 1 })).toThrow(/holds 30/);
    expect(() => session.chat([...CONVERSATION, { role: 'user', content: 'x '.repeat(40) }])).toThrow(ContextLengthError);
    expect(() => session.chat([{ role: 'wizard' as 'user', content: 'hi' }])).toThrow(ChatTemplateError);
    expect(() => session.chat([{ role: 'wizard' as 'user', content: 'hi' }])).toThrow(/messages\[0\]\.role/);
    const r = await session.chat(CONVERSATION, { maxTokens: 30 - promptTokens }).result;
    expect(r.usage.totalTokens).toBe(30);
    await session.close();
  });

  // a continued prefill runs several query rows after a non-empty cache (startPos > 0), which
  // plain generation never does: check it on the GPU kernels too (SwiftShader here: few tokens)
  it('on WebGPU, a turn continued from the cache equals a fresh run', async () => {
    const gpu = await Engine.load({ backend: await createWebGpuBackend(), source });
    const session = new ChatSession(gpu);
    const first = await session.chat(CONVERSATION, { maxTokens: 2 }).result;
    const turn2: ChatMessage[] = [...CONVERSATION, { role: 'assistant', content: first.text }, { role: 'user', content: 'And then?' }];
    const second = await session.chat(turn2, { maxTokens: 2 }).result;
    expect(second.stats.reusedTokens).toBeGreaterThan(first.usage.promptTokens);
    expect(second.stats.prefilledTokens).toBeGreaterThan(1);
    const fresh = new ChatSession(gpu);
    expect(second.ids).toEqual((await fresh.chat(turn2, { maxTokens: 2 }).result).ids);
    await Promise.all([session.close(), fresh.close()]);
  }, 400_000);

  it('a model without a template refuses chat with a typed error but completes text', async () => {
    const demo = await Engine.load({ backend: createCpuBackend(), source: await modelDirSource(DEMO) });
    expect(demo.chatTemplate).toBeNull();
    const session = new ChatSession(demo);
    expect(() => session.chat(CONVERSATION)).toThrow(NoChatTemplateError);
    const r = await session.complete('In the beginning', { maxTokens: 4 }).result;
    expect(r.ids).toEqual(await generateIds(demo, demo.encode('In the beginning'), 4));
    await session.close();
  });
});

describe('StopMatcher', () => {
  it('holds back text that may begin a stop string and releases it when it does not', () => {
    const m = new StopMatcher(['END']);
    expect(m.push('abc E')).toEqual({ text: 'abc ', stopped: false });
    expect(m.push('x')).toEqual({ text: 'Ex', stopped: false });
    expect(m.push('E')).toEqual({ text: '', stopped: false });
    expect(m.push('NDtail')).toEqual({ text: '', stopped: true });
    const n = new StopMatcher(['\n\n', 'STOP']);
    expect(n.push('a\n')).toEqual({ text: 'a', stopped: false });
    expect(n.flush()).toBe('\n');
    expect(() => new StopMatcher([''])).toThrow(RangeError);
  });
});
