import { UsageError, type Command } from '../command.ts';

interface BenchRunner {
  summary: string;
  run(argv: string[]): Promise<number>;
}

/** Benchmarks by name; each loads its own code on demand. Add one line per benchmark. */
const benches: Record<string, BenchRunner> = {
  kernels: {
    summary: 'GEMV bandwidth per weight layout vs raw read, prefill GEMM, staging upload rate (WebGPU)',
    run: async (argv) => (await import('../../bench/kernels.ts')).kernelBenchMain(argv),
  },
};

const usage = `usage: doppler bench <name> [options]      doppler bench <name> --help

benchmarks:
${Object.entries(benches)
  .map(([name, b]) => `  ${name.padEnd(10)} ${b.summary}`)
  .join('\n')}

Results print as JSON with --json and are written to a file with --out FILE.`;

export const command: Command = {
  name: 'bench',
  summary: 'run a benchmark (kernels)',
  usage,
  async run(argv) {
    const [name, ...rest] = argv;
    if (name === undefined) throw new UsageError('which benchmark? expected a name');
    const bench = benches[name];
    if (!bench) throw new UsageError(`unknown benchmark "${name}"`);
    return bench.run(rest);
  },
};
