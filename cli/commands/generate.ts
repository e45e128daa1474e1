import type { Engine } from '../../engine/index.ts';
import { UsageError, intFlag, numFlag, numberOption, parseCommandArgs, type Command } from '../command.ts';
import { BACKEND_HELP, backendOptions, statsLine } from '../engine-setup.ts';
import { STORE_HELP, oneModel, openCliModel, storeOptions } from '../model-source.ts';

const usage = `usage: doppler generate <model> (--ids 1,2,3 | --prompt "text") [options]

Generates from a converted model, streaming text to the terminal (or one JSON object with --json).

options:
  --ids LIST             prompt as comma-separated token ids
  --prompt TEXT          prompt as text (needs the model's tokenizer.json)
  --max-new N            tokens to generate (default 32)
  --greedy               always take the most likely token (the default unless --temperature > 0)
  --temperature T        sample with temperature T
  --top-p P              nucleus sampling: keep the most likely tokens up to probability P (default 1)
  --seed S               seed for sampling (default 0)
  --no-eos               keep going past the model's end-of-sequence token
  --json                 print {"input_ids","generated_ids","text","stats"} instead of streaming
  --dump-logits          with --json: add "prefill_logits" (every prompt position) and "step_logits"
${BACKEND_HELP}
${STORE_HELP}`;

function parseIds(list: string): number[] {
  const ids = list.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  if (ids.length === 0 || ids.some((n) => !Number.isInteger(n) || n < 0)) throw new UsageError(`--ids expects comma-separated non-negative integers, got "${list}"`);
  return ids;
}

const options = {
  ids: { type: 'string' },
  prompt: { type: 'string' },
  'max-new': intFlag(0, 1_000_000),
  greedy: { type: 'boolean' },
  temperature: numFlag(0),
  'top-p': numFlag(0, 1),
  seed: intFlag(0),
  'no-eos': { type: 'boolean' },
  json: { type: 'boolean' },
  'dump-logits': { type: 'boolean' },
  ...backendOptions,
  ...storeOptions,
} as const;

type Values = ReturnType<typeof parseCommandArgs<typeof options>>['values'];

export const command: Command = {
  name: 'generate',
  summary: 'generate tokens from a converted model',
  usage,
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, options);
    const model = oneModel(positionals);
    if ((values.ids === undefined) === (values.prompt === undefined)) throw new UsageError('give exactly one of --ids or --prompt');
    const opened = await openCliModel(model, values.backend, values);
    try {
      return await generate(opened.engine, values);
    } finally {
      await opened.close();
    }
  },
};

async function generate(engine: Engine, values: Values): Promise<number> {
  const inputIds = values.ids !== undefined ? parseIds(values.ids) : engine.encode(values.prompt!);
  const gen = engine.generate(inputIds, {
    maxNewTokens: numberOption(values['max-new'], '--max-new') ?? 32,
    temperature: values.greedy ? 0 : numberOption(values.temperature, '--temperature') ?? 0,
    topP: numberOption(values['top-p'], '--top-p'),
    seed: numberOption(values.seed, '--seed'),
    stopOnEos: !values['no-eos'],
    keepLogits: values['dump-logits'] === true,
  });
  const generated: number[] = [];
  let text = '';
  for await (const t of gen) {
    generated.push(t.id);
    text += t.text;
    if (!values.json) process.stdout.write(engine.codec ? t.text : `${t.id} `);
  }
  if (values.json) {
    const out: Record<string, unknown> = { input_ids: inputIds, generated_ids: generated, text, stats: gen.stats };
    if (values['dump-logits']) {
      out.prefill_logits = gen.prefillLogits.map((r) => Array.from(r));
      out.step_logits = gen.stepLogits.map((r) => Array.from(r));
    }
    process.stdout.write(JSON.stringify(out) + '\n');
  } else {
    process.stdout.write('\n');
    process.stderr.write(statsLine(gen.stats));
  }
  return 0;
}
