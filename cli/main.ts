import { UsageError, type Command } from './command.ts';

/** Subcommands, loaded on demand so `doppler verify` does not pay for libp2p or WebGPU. */
const commands: Record<string, () => Promise<Command>> = {
  demo: async () => (await import('./commands/demo.ts')).command,
  generate: async () => (await import('./commands/generate.ts')).command,
  perplexity: async () => (await import('./commands/perplexity.ts')).command,
  signal: async () => (await import('./commands/signal.ts')).command,
  seed: async () => (await import('./commands/seed.ts')).command,
  join: async () => (await import('./commands/join.ts')).command,
  fetch: async () => (await import('./commands/fetch.ts')).command,
  convert: async () => (await import('./commands/convert.ts')).command,
  verify: async () => (await import('./commands/verify.ts')).command,
  inspect: async () => (await import('./commands/inspect.ts')).command,
  synth: async () => (await import('./commands/synth.ts')).command,
  bench: async () => (await import('./commands/bench.ts')).command,
  serve: async () => (await import('./commands/serve.ts')).command,
  chat: async () => (await import('./commands/chat.ts')).command,
};

async function overview(): Promise<string> {
  const names = Object.keys(commands).sort();
  const loaded = await Promise.all(names.map((n) => commands[n]!()));
  const width = Math.max(...names.map((n) => n.length));
  return [
    'doppler — browser-native Mixture-of-Experts inference over a weight swarm',
    '',
    'usage: doppler <command> [options]      doppler <command> --help',
    '',
    'commands:',
    ...loaded.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(await overview());
    return name === undefined ? 2 : 0;
  }
  const load = commands[name];
  if (!load) {
    console.error(`doppler: unknown command "${name}"\n\n${await overview()}`);
    return 2;
  }
  const command = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`doppler ${name}: ${err.message}\n\n${command.usage}`);
      return 2;
    }
    console.error(`doppler ${name}: ${describeError(err)}`);
    return 1;
  }
}

/** The message of an error and of each cause below it, one per line. */
function describeError(err: unknown): string {
  const lines: string[] = [];
  for (let e: unknown = err; e !== undefined && e !== null; e = (e as { cause?: unknown }).cause) {
    lines.push(e instanceof Error ? e.message : String(e));
    if (!(e instanceof Error)) break;
  }
  return lines.join('\n  caused by: ');
}
