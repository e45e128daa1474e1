/**
 * The harmony prompt format of gpt-oss through createChatTemplate (@huggingface/jinja), on a
 * template using the features of openai/gpt-oss-20b's own: strftime_now (the date pinned here),
 * raise_exception surfacing as ChatTemplateError, namespace(), slicing, tojson, whitespace control.
 */
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ChatTemplateError, createChatTemplate } from '../../../engine/chat-template.ts';

const SOURCE = readFileSync(new URL('../../fixtures/chat-templates/harmony-features.jinja', import.meta.url), 'utf8');
const SYSTEM = '<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n'
  + 'Current date: 2026-03-04\n\nReasoning: medium\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>';

describe('a harmony (gpt-oss) chat template', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date(2026, 2, 4, 12));
  });
  afterEach(() => vi.useRealTimers());

  it('renders a user/assistant conversation in harmony\'s shape, the system message as developer instructions', () => {
    const t = createChatTemplate(SOURCE, null);
    const text = t.render([
      { role: 'system', content: 'Be terse.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'A joke?' },
    ]);
    expect(text).toBe(`${SYSTEM}<|start|>developer<|message|># Instructions\n\nBe terse.\n\n<|end|>`
      + '<|start|>user<|message|>Hi<|end|><|start|>assistant<|channel|>final<|message|>Hello!<|end|>'
      + '<|start|>user<|message|>A joke?<|end|><|start|>assistant');
    expect(t.render([{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }], false))
      .toBe(`${SYSTEM}<|start|>user<|message|>Hi<|end|><|start|>assistant<|channel|>final<|message|>Hello!<|return|>`);
  });

  it('the template\'s raise_exception reaches the caller as a ChatTemplateError with its message', () => {
    const t = createChatTemplate(SOURCE, null);
    expect(() => t.render([{ role: 'user', content: 'Hi' }, { role: 'tool', content: '{}' }])).toThrow(ChatTemplateError);
    expect(() => t.render([{ role: 'user', content: 'Hi' }, { role: 'assistant', content: '<|channel|>final<|message|>x' }, { role: 'user', content: 'Hi' }]))
      .toThrow(/failed to render: an assistant message holds <\|channel\|> tags/);
  });
});
