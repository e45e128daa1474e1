import { parseArgs, type ParseArgsConfig } from 'node:util';

/** One `doppler` subcommand. `run` returns the process exit code. */
export interface Command {
  name: string;
  summary: string;
  /** Full help text printed by `doppler <name> --help`. */
  usage: string;
  run(argv: string[]): Promise<number>;
}

/** A mistake in how the command was called: printed with the usage, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs with strict checking, turning its errors into UsageError. */
export function parseCommandArgs<O extends Options>(argv: string[], options: O, allowPositionals = true) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message, { cause: err });
  }
}

/** A numeric option: undefined stays undefined, anything else must be a finite number. */
export function numberOption(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new UsageError(`${flag} expects a number, got "${value}"`);
  return n;
}
