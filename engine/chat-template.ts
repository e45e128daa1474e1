/**
 * A model's own chat template (Jinja, from `chat_template.jinja` or `tokenizer_config.json`'s
 * `chat_template`), rendered with Hugging Face's maintained JS Jinja implementation, with the
 * variables transformers' `apply_chat_template` passes.
 */
import { Template } from '@huggingface/jinja';
import { EngineError } from './errors.ts';

export type ChatRole = 'system' | 'developer' | 'user' | 'assistant' | 'tool';
export const CHAT_ROLES: readonly ChatRole[] = ['system', 'developer', 'user', 'assistant', 'tool'];

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** The model has no chat template: it can continue text, not chat. */
export class NoChatTemplateError extends EngineError {
  override name = 'NoChatTemplateError';
}

/** A message the template cannot take (unknown role, content not text) or a template that fails to render. */
export class ChatTemplateError extends EngineError {
  override name = 'ChatTemplateError';
}

export interface ChatTemplate {
  render(messages: readonly ChatMessage[], addGenerationPrompt?: boolean): string;
}

interface TokenizerConfig {
  chat_template?: string | { name: string; template: string }[];
  [key: string]: unknown;
}

/** The template's Jinja source: chat_template.jinja wins, as in transformers; null when the model has none. */
export function chatTemplateSource(tokenizerConfig: TokenizerConfig | null, jinjaFile: string | null): string | null {
  if (jinjaFile !== null && jinjaFile.trim() !== '') return jinjaFile;
  const t = tokenizerConfig?.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) return t.find((x) => x.name === 'default')?.template ?? null;
  return null;
}

/** Special tokens as the template sees them (`bos_token`, `eos_token`, …): strings, or `{ content }` objects. */
function specialTokens(cfg: TokenizerConfig | null): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(cfg ?? {})) {
    if (!k.endsWith('_token')) continue;
    if (typeof v === 'string') out[k] = v;
    else if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') out[k] = (v as { content: string }).content;
  }
  return out;
}

export function createChatTemplate(source: string, tokenizerConfig: TokenizerConfig | null): ChatTemplate {
  let template: Template;
  try {
    template = new Template(source);
  } catch (err) {
    throw new ChatTemplateError(`the model's chat template does not parse: ${(err as Error).message}`, { cause: err });
  }
  const tokens = specialTokens(tokenizerConfig);
  return {
    render(messages, addGenerationPrompt = true) {
      checkMessages(messages);
      try {
        return template.render({
          ...tokens,
          messages: messages.map((m) => ({ role: m.role, content: m.content })),
          add_generation_prompt: addGenerationPrompt,
        });
      } catch (err) {
        // also the template's own raise_exception(...), e.g. for roles in an order it does not take
        throw new ChatTemplateError(`the chat template failed to render: ${(err as Error).message}`, { cause: err });
      }
    },
  };
}

/** Messages as they come from a client: refused by name before the template sees them. */
export function checkMessages(messages: readonly unknown[]): asserts messages is ChatMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) throw new ChatTemplateError('messages must be a non-empty array');
  messages.forEach((m, i) => {
    const { role, content } = (m ?? {}) as { role?: unknown; content?: unknown };
    if (typeof role !== 'string' || !(CHAT_ROLES as readonly string[]).includes(role)) {
      throw new ChatTemplateError(`messages[${i}].role is ${JSON.stringify(role)}; expected one of ${CHAT_ROLES.join(', ')}`);
    }
    if (typeof content !== 'string') throw new ChatTemplateError(`messages[${i}].content must be a string`);
  });
}
