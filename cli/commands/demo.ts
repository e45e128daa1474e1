import { fileURLToPath } from 'node:url';
import type { Engine } from '../../engine/index.ts';
import { intFlag, numberOption, parseCommandArgs, type Command } from '../command.ts';
import { BACKEND_HELP, backendOptions, statsLine } from '../engine-setup.ts';
import { openCliModel } from '../model-source.ts';

/** The embedded default: the trained fixture tiny-moe-text, converted to RDRR and committed. */
export const DEMO_MODEL = fileURLToPath(new URL('../../models/tiny-moe-text-q8_0', import.meta.url));

const usage = `usage: doppler demo [--prompt TEXT] [--max-new N]

Runs the embedded demo model (${DEMO_MODEL}): a small trained Mixtral-style
MoE, on WebGPU (SwiftShader when the machine has no GPU), streaming its continuation of a prompt.

options:
  --prompt TEXT   default "In the beginning"
  --max-new N     default 32
${BACKEND_HELP}`;

export const command: Command = {
  name: 'demo',
  summary: 'generate text with the embedded demo model',
  usage,
  async run(argv) {
    const { values } = parseCommandArgs(argv, { prompt: { type: 'string' }, 'max-new': intFlag(0, 1_000_000), ...backendOptions }, false);
    const { engine, close } = await openCliModel(DEMO_MODEL, values.backend, {});
    try {
      await demo(engine, values.prompt ?? 'In the beginning', numberOption(values['max-new'], '--max-new') ?? 32);
    } finally {
      await close();
    }
    return 0;
  },
};

async function demo(engine: Engine, prompt: string, maxNewTokens: number): Promise<void> {
  const s = engine.manifest.totals;
  process.stderr.write(`model ${engine.manifest.name} (${engine.modelId.slice(0, 16)}…), ${engine.config.architecture}, ` +
    `${(s.parameters / 1e6).toFixed(1)} M parameters, ${engine.manifest.quant}, ${engine.manifest.shards.length} shards\n`);
  process.stdout.write(prompt);
  const gen = engine.generate(engine.encode(prompt), { maxNewTokens });
  for await (const t of gen) process.stdout.write(t.text);
  process.stdout.write('\n');
  process.stderr.write(statsLine(gen.stats));
}
