import { parseCommandArgs, UsageError } from '../cli/command.ts';

/** How a benchmark was started, recorded in its results file so every figure names its command. */
export function invocation(script: string): string {
  return ['node_modules/.bin/node', `bench/${script}`, ...process.argv.slice(2)].join(' ');
}

/**
 * A bench script's flags, checked as the CLI checks its own (numeric flags declared with
 * intFlag/numFlag); a mistake prints its message and exits 2 instead of running on NaN.
 *
 * @example
 * const { values } = benchArgs({ tokens: { ...intFlag(1), default: '32' } });
 */
export function benchArgs<O extends Parameters<typeof parseCommandArgs>[1]>(options: O) {
  try {
    return parseCommandArgs(process.argv.slice(2), options, false);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exit(2);
  }
}
