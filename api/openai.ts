/**
 * A loaded model behind OpenAI's chat and text completion shapes: the server and the in-tab API
 * both turn requests into chat-session turns here, so both answer alike.
 */
import type { ChatReply, ChatResult, ChatSession, FinishReason } from '../engine/index.ts';
import { ApiError } from './errors.ts';
import type { ChatRequest, CompletionRequest } from './request.ts';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** cached_tokens: prompt tokens whose KV cache the session already held (not prefilled again). */
  prompt_tokens_details: { cached_tokens: number };
}

type Finish = FinishReason;

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: { index: 0; message: { role: 'assistant'; content: string }; finish_reason: Finish; logprobs: null }[];
  usage: Usage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: { index: 0; delta: { role?: 'assistant'; content?: string }; finish_reason: Finish | null; logprobs: null }[];
  usage?: Usage;
}

export interface Completion {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: { index: 0; text: string; finish_reason: Finish; logprobs: null }[];
  usage: Usage;
}

export type CompletionChunk = Omit<Completion, 'choices' | 'usage'> & {
  choices: { index: 0; text: string; finish_reason: Finish | null; logprobs: null }[];
  usage?: Usage;
};

/** One request's answer: stream the chunks, or await the whole object (either, not both). */
export interface Run<C, F> {
  readonly promptTokens: number;
  chunks(): AsyncIterable<C>;
  final(): Promise<F>;
}

export function usageOf(r: ChatResult): Usage {
  return {
    prompt_tokens: r.usage.promptTokens,
    completion_tokens: r.usage.completionTokens,
    total_tokens: r.usage.totalTokens,
    prompt_tokens_details: { cached_tokens: r.stats.reusedTokens },
  };
}

let counter = 0;
const newId = (prefix: string) => `${prefix}-${Date.now().toString(36)}${(counter++).toString(36)}`;

export class OpenAiModel {
  readonly id: string;
  readonly session: ChatSession;
  readonly created = Math.floor(Date.now() / 1000);

  constructor(id: string, session: ChatSession) {
    this.id = id;
    this.session = session;
  }

  /** Starts the turn (refusing bad input at once, with the engine's typed errors). */
  chat(req: ChatRequest, signal?: AbortSignal): Run<ChatCompletionChunk, ChatCompletion> {
    const reply = this.session.chat(req.messages, { ...req.options, ...(signal ? { signal } : {}) });
    const head = { id: newId('chatcmpl'), object: 'chat.completion.chunk' as const, created: Math.floor(Date.now() / 1000), model: this.id };
    const choice = (delta: { role?: 'assistant'; content?: string }, finish: Finish | null) => ({ index: 0 as const, delta, finish_reason: finish, logprobs: null });
    return {
      promptTokens: reply.promptTokens,
      chunks: () => stream(reply, req.includeUsage, {
        first: () => ({ ...head, choices: [choice({ role: 'assistant', content: '' }, null)] }),
        delta: (text) => ({ ...head, choices: [choice({ content: text }, null)] }),
        last: (r) => ({ ...head, choices: [choice({}, r.finishReason)] }),
        usage: (r) => ({ ...head, choices: [], usage: usageOf(r) }),
      }),
      final: async () => {
        const r = await reply.result;
        return {
          id: head.id, object: 'chat.completion', created: head.created, model: this.id,
          choices: [{ index: 0, message: { role: 'assistant', content: r.text }, finish_reason: r.finishReason, logprobs: null }],
          usage: usageOf(r),
        };
      },
    };
  }

  completion(req: CompletionRequest, signal?: AbortSignal): Run<CompletionChunk, Completion> {
    const vocab = this.session.engine.config.vocabSize;
    if (Array.isArray(req.prompt) && req.prompt.some((id) => id >= vocab)) throw new ApiError(400, `prompt token ids must be below the vocabulary size ${vocab}`, { param: 'prompt' });
    const reply = this.session.complete(req.prompt, { ...req.options, ...(signal ? { signal } : {}) });
    const head = { id: newId('cmpl'), object: 'text_completion' as const, created: Math.floor(Date.now() / 1000), model: this.id };
    const choice = (text: string, finish: Finish | null) => ({ index: 0 as const, text, finish_reason: finish, logprobs: null });
    return {
      promptTokens: reply.promptTokens,
      chunks: () => stream(reply, req.includeUsage, {
        first: () => null,
        delta: (text) => ({ ...head, choices: [choice(text, null)] }),
        last: (r) => ({ ...head, choices: [choice('', r.finishReason)] }),
        usage: (r) => ({ ...head, choices: [], usage: usageOf(r) }),
      }),
      final: async () => {
        const r = await reply.result;
        return { ...head, choices: [{ index: 0, text: r.text, finish_reason: r.finishReason, logprobs: null }], usage: usageOf(r) };
      },
    };
  }
}

interface ChunkShapes<C> {
  first(): C | null;
  delta(text: string): C;
  last(r: ChatResult): C;
  usage(r: ChatResult): C;
}

async function* stream<C>(reply: ChatReply, includeUsage: boolean, shape: ChunkShapes<C>): AsyncGenerator<C> {
  const first = shape.first();
  if (first) yield first;
  for await (const d of reply) if (d.text) yield shape.delta(d.text);
  const r = await reply.result;
  yield shape.last(r);
  if (includeUsage) yield shape.usage(r);
}
