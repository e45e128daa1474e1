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

/** What a numeric flag accepts; checked for every such flag when the arguments are parsed. */
interface NumericRule {
  integer: boolean;
  min: number;
  max: number;
}

/**
 * A flag taking an integer in [min, max] (default: any non-negative safe integer). Declaring a flag
 * this way is what gets it checked: `--workers 2.5` fails at parse time, naming the flag.
 *
 * @example
 * parseCommandArgs(argv, { workers: intFlag(1, 1024) }) // --workers 2.5 → UsageError
 */
export function intFlag(min = 0, max = Number.MAX_SAFE_INTEGER) {
  return { type: 'string', numeric: { integer: true, min, max } } as const;
}

/** A flag taking a finite number in [min, max] (default: any non-negative number). */
export function numFlag(min = 0, max = Number.MAX_VALUE) {
  return { type: 'string', numeric: { integer: false, min, max } } as const;
}

function ruleOf(spec: unknown): NumericRule | undefined {
  return (spec as { numeric?: NumericRule }).numeric;
}

function checkNumeric(flag: string, raw: string, rule: NumericRule): void {
  const n = raw.trim() === '' ? NaN : Number(raw);
  const kind = rule.integer ? 'an integer' : 'a number';
  const range = rule.max >= (rule.integer ? Number.MAX_SAFE_INTEGER : Number.MAX_VALUE) ? `≥ ${rule.min}` : `in [${rule.min}, ${rule.max}]`;
  if (!Number.isFinite(n) || (rule.integer && !Number.isSafeInteger(n)) || n < rule.min || n > rule.max) {
    throw new UsageError(`--${flag} expects ${kind} ${range}, got "${raw}"`);
  }
}

/** parseArgs with strict checking, turning its errors into UsageError; numeric flags are range-checked here. */
export function parseCommandArgs<O extends Options>(argv: string[], options: O, allowPositionals = true) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message, { cause: err });
  }
  const values = parsed.values as Record<string, unknown>;
  for (const [flag, spec] of Object.entries(options)) {
    const rule = ruleOf(spec);
    const v = values[flag];
    if (!rule || v === undefined) continue;
    for (const raw of Array.isArray(v) ? v : [v]) checkNumeric(flag, String(raw), rule);
  }
  return parsed;
}

/** The number of a flag declared with intFlag/numFlag (already checked), or undefined when absent. */
export function numberOption(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new UsageError(`${flag} expects a number, got "${value}"`);
  return n;
}
