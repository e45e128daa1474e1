import { createInterface } from 'node:readline';
import { ChatSession, ContextLengthError, type ChatMessage, type ChatOptions, type ChatReply, type ChatResult } from '../../engine/index.ts';
import { intFlag, numFlag, numberOption, parseCommandArgs, type Command } from '../command.ts';
import { BACKEND_HELP, backendOptions } from '../engine-setup.ts';
import { STORE_HELP, oneModel, openCliModel, storeOptions } from '../model-source.ts';

const usage = `usage: doppler chat <model> [options]

An interactive chat in the terminal: each line you type is a user message, the reply streams
back. The conversation's KV cache is kept, so each turn prefills only its new tokens. A model
without a chat template continues the text instead (the transcript so far, plus your line).

  /reset     start a new conversation
  /exit      quit (as does Ctrl-D)
  Ctrl-C     stop the reply being written (at the prompt: quit)

options:
  --system TEXT          a system message to begin each conversation with
  --max-tokens N         most tokens per reply (default 256)
  --temperature T        sample with temperature T (default 0: greedy)
  --top-p P              nucleus sampling
  --seed S               seed for sampling (default 0)
  --context N            KV cache positions (default: the model's context, at most 4096)
${BACKEND_HELP}
${STORE_HELP}`;

const options = {
  system: { type: 'string' },
  'max-tokens': intFlag(1, 1_000_000),
  temperature: numFlag(0),
  'top-p': numFlag(0, 1),
  seed: intFlag(0),
  context: intFlag(1),
  ...backendOptions,
  ...storeOptions,
} as const;

export const command: Command = {
  name: 'chat',
  summary: 'chat with a model in the terminal',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, options);
    const model = oneModel(positionals);
    const context = numberOption(values.context, '--context');
    const topP = numberOption(values['top-p'], '--top-p');
    const turnOptions: ChatOptions = {
      maxTokens: numberOption(values['max-tokens'], '--max-tokens') ?? 256,
      temperature: numberOption(values.temperature, '--temperature') ?? 0,
      seed: numberOption(values.seed, '--seed') ?? 0,
      ...(topP !== undefined ? { topP } : {}),
    };
    const opened = await openCliModel(model, values.backend, values);
    const session = new ChatSession(opened.engine, context !== undefined ? { contextTokens: context } : {});
    try {
      await repl(session, turnOptions, values.system);
    } finally {
      await session.close();
      await opened.close();
    }
    return 0;
  },
};

/** Reads lines until /exit or end of input; Ctrl-C aborts the reply in progress. */
async function repl(session: ChatSession, turn: ChatOptions, system: string | undefined): Promise<void> {
  const chat = session.engine.chatTemplate !== null;
  const tty = process.stdin.isTTY === true;
  const fresh = (): ChatMessage[] => (system !== undefined ? [{ role: 'system', content: system }] : []);
  let messages = fresh();
  let transcript = '';
  let current: AbortController | null = null;
  const rl = createInterface({ input: process.stdin, output: tty ? process.stdout : undefined, terminal: tty });
  const interrupt = () => {
    if (current) current.abort();
    else rl.close();
  };
  rl.on('SIGINT', interrupt);
  process.on('SIGINT', interrupt);
  process.stderr.write(`${session.engine.manifest.name}: ${chat ? 'chat template found' : 'no chat template: continuing text'}; /reset, /exit, Ctrl-C stops a reply\n`);
  if (tty) rl.prompt();
  try {
    for await (const line of rl) {
      const text = line.trim();
      if (text === '/exit') break;
      if (text === '/reset') {
        messages = fresh();
        transcript = '';
        await session.reset();
        process.stderr.write('[conversation reset]\n');
      } else if (text !== '') {
        current = new AbortController();
        const opts = { ...turn, signal: current.signal };
        let reply: ChatReply;
        try {
          if (chat) reply = session.chat([...messages, { role: 'user', content: text }], opts);
          else reply = session.complete(transcript + text, opts);
        } catch (err) {
          const hint = err instanceof ContextLengthError ? ' (/reset starts a new conversation)' : '';
          process.stderr.write(`error: ${(err as Error).message}${hint}\n`);
          current = null;
          if (tty) rl.prompt();
          continue;
        }
        const r = await show(reply);
        current = null;
        if (chat) messages.push({ role: 'user', content: text }, { role: 'assistant', content: r.text });
        else transcript += text + r.text;
      }
      if (tty) rl.prompt();
    }
  } finally {
    process.off('SIGINT', interrupt);
    rl.close();
  }
}

async function show(reply: ChatReply): Promise<ChatResult> {
  for await (const d of reply) process.stdout.write(d.text);
  const r = await reply.result;
  process.stdout.write('\n');
  const s = r.stats;
  process.stderr.write(`[${r.finishReason === 'abort' ? 'stopped · ' : ''}${r.usage.completionTokens} tokens · prefilled ${s.prefilledTokens}, reused ${s.reusedTokens} · ` +
    `TTFT ${s.ttftMs.toFixed(0)} ms · ${s.decodeTokPerS.toFixed(1)} tok/s]\n`);
  return r;
}
