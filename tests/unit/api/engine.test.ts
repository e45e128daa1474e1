/**
 * The in-tab API (createEngine → chat.completions.create) on the chat test model, CPU backend:
 * streamed chunks add up to the non-streamed answer, which is the session's greedy reply;
 * interruptGenerate stops a stream; bad requests are refused in the OpenAI error shape.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, createEngine, type ChatCompletionChunk, type DopplerEngine } from '../../../api/index.ts';
import { createCpuBackend } from '../../../kernels/index.ts';
import { DirSource } from '../../../storage/node.ts';
import { makeChatModel } from '../../integration/chat-model.ts';

const MESSAGES = [{ role: 'user', content: 'In the beginning' }];

describe('createEngine', () => {
  let root: string;
  let engine: DopplerEngine;
  const stages: string[] = [];
  beforeAll(async () => {
    const m = await makeChatModel();
    root = m.root;
    engine = await createEngine({ model: new DirSource(m.dir), modelId: m.id, backend: createCpuBackend(), onProgress: (p) => stages.push(p.stage) });
  });
  afterAll(async () => {
    await engine?.unload();
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('loads with progress and answers in OpenAI\'s shape, streamed and whole alike', async () => {
    expect(stages[0]).toBe('manifest');
    expect(stages).toContain('shard');
    expect(stages.at(-1)).toBe('ready');
    const whole = await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 8, temperature: 0 });
    expect(whole.object).toBe('chat.completion');
    expect(whole.model).toBe(engine.modelId);
    expect(whole.usage.completion_tokens).toBe(8);
    const chunks: ChatCompletionChunk[] = [];
    for await (const c of await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true } })) chunks.push(c);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(whole.choices[0]!.message.content);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('length');
    expect(chunks.at(-1)!.usage!.completion_tokens).toBe(8);
    // the same prompt again: its KV cache is reused
    expect(chunks.at(-1)!.usage!.prompt_tokens_details.cached_tokens).toBeGreaterThan(0);
  });

  it('interruptGenerate ends a stream, and the next request completes', async () => {
    const chunks = await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 100, temperature: 0, stream: true });
    let n = 0;
    let finish: string | null = null;
    for await (const c of chunks) {
      if (++n === 3) engine.interruptGenerate();
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    expect(finish).toBe('abort');
    expect(n).toBeLessThan(20);
    const next = await engine.chat.completions.create({ messages: MESSAGES, max_tokens: 3, temperature: 0 });
    expect(next.usage.completion_tokens).toBe(3);
  });

  it('refuses bad requests with OpenAI-style errors', async () => {
    const bad = engine.chat.completions.create({ messages: [{ role: 'wizard', content: 'x' }] });
    await expect(bad).rejects.toBeInstanceOf(ApiError);
    await expect(bad).rejects.toMatchObject({ status: 400, param: 'messages' });
    await expect(engine.chat.completions.create({ messages: MESSAGES, max_tokens: 1e6 })).rejects.toMatchObject({ status: 400, code: 'context_length_exceeded' });
  });
});
