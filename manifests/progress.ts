/** A one-line progress bar on stderr, drawn only when stderr is a terminal (never in logs or pipes). */
export function progressBar(label: string): { update(done: number, total: number, detail?: string): void; end(): void } {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  let drawn = false;
  return {
    update(done, total, detail = '') {
      if (!tty) return;
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const width = 30;
      const frac = total > 0 ? Math.min(1, done / total) : 1;
      const fill = Math.round(frac * width);
      process.stderr.write(`\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(1)}% ${detail}\x1b[K`);
      drawn = true;
    },
    end() {
      if (tty && drawn) process.stderr.write('\n');
    },
  };
}
