/** Request bodies of the OpenAI chat and text completion endpoints, checked field by field. */
import { checkMessages, type ChatMessage, type ChatOptions } from '../engine/index.ts';
import { ApiError } from './errors.ts';

export interface SamplingRequest {
  model: string;
  stream: boolean;
  /** Send a last chunk with `usage` (stream_options.include_usage). */
  includeUsage: boolean;
  options: Omit<ChatOptions, 'signal'>;
}

export interface ChatRequest extends SamplingRequest {
  messages: ChatMessage[];
}

export interface CompletionRequest extends SamplingRequest {
  prompt: string | number[];
}

type Body = Record<string, unknown>;

function objectBody(body: unknown): Body {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ApiError(400, 'the request body must be a JSON object');
  return body as Body;
}

function num(b: Body, key: string, check: (n: number) => boolean, what: string): number | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw new ApiError(400, `${key} must be ${what}, got ${JSON.stringify(v)}`, { param: key });
  return v;
}

/** Fields this server does not implement are refused by name rather than silently ignored. */
const UNSUPPORTED = ['tools', 'tool_choice', 'functions', 'function_call', 'logprobs', 'top_logprobs', 'logit_bias', 'response_format', 'echo', 'best_of', 'suffix', 'presence_penalty', 'frequency_penalty'];

function sampling(b: Body): SamplingRequest {
  if (typeof b.model !== 'string' || b.model === '') throw new ApiError(400, 'model is required (GET /v1/models lists them)', { param: 'model' });
  for (const k of UNSUPPORTED) {
    const v = b[k];
    // the client libraries send some of these with neutral values; only a value that asks for the feature is refused
    if (v === undefined || v === null || v === false || v === 0) continue;
    throw new ApiError(400, `${k} is not supported by this server`, { param: k, code: 'unsupported_parameter' });
  }
  num(b, 'n', (x) => x === 1, '1 (one choice per request)');
  if (b.stream !== undefined && b.stream !== null && typeof b.stream !== 'boolean') throw new ApiError(400, 'stream must be a boolean', { param: 'stream' });
  const maxTokens = num(b, 'max_completion_tokens', (x) => Number.isInteger(x) && x >= 1, 'a positive integer') ?? num(b, 'max_tokens', (x) => Number.isInteger(x) && x >= 1, 'a positive integer');
  const temperature = num(b, 'temperature', (x) => x >= 0 && x <= 2, 'between 0 and 2');
  const topP = num(b, 'top_p', (x) => x > 0 && x <= 1, 'in (0, 1]');
  const seed = num(b, 'seed', Number.isInteger, 'an integer');
  const stop = stopOf(b.stop);
  const so = b.stream_options;
  const includeUsage = so !== null && typeof so === 'object' && (so as Body).include_usage === true;
  return {
    model: b.model,
    stream: b.stream === true,
    includeUsage,
    options: {
      // OpenAI's default temperature is 1; 0 is greedy
      temperature: temperature ?? 1,
      ...(topP !== undefined ? { topP } : {}),
      seed: seed ?? Math.floor(Math.random() * 2 ** 31),
      ...(maxTokens !== undefined ? { maxTokens } : {}),
      ...(stop.length ? { stop } : {}),
    },
  };
}

function stopOf(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > 4 || !list.every((s) => typeof s === 'string' && s.length > 0)) {
    throw new ApiError(400, 'stop must be a non-empty string or an array of up to 4 of them', { param: 'stop' });
  }
  return list as string[];
}

export function parseChatRequest(body: unknown): ChatRequest {
  const b = objectBody(body);
  const base = sampling(b);
  const messages = b.messages;
  if (!Array.isArray(messages)) throw new ApiError(400, 'messages must be an array', { param: 'messages' });
  try {
    checkMessages(messages);
  } catch (err) {
    throw new ApiError(400, (err as Error).message, { param: 'messages', cause: err });
  }
  return { ...base, messages: messages.map((m) => ({ role: m.role, content: m.content })) };
}

export function parseCompletionRequest(body: unknown): CompletionRequest {
  const b = objectBody(body);
  const base = sampling(b);
  const p = b.prompt;
  if (typeof p === 'string' && p.length > 0) return { ...base, prompt: p };
  if (Array.isArray(p) && p.length > 0 && p.every((x) => Number.isInteger(x) && x >= 0)) return { ...base, prompt: p as number[] };
  throw new ApiError(400, 'prompt must be a non-empty string or an array of token ids (one prompt per request)', { param: 'prompt' });
}
