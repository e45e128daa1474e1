/** How a benchmark was started, recorded in its results file so every figure names its command. */
export function invocation(script: string): string {
  return ['node_modules/.bin/node', `bench/${script}`, ...process.argv.slice(2)].join(' ');
}
