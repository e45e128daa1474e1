/**
 * Stop strings over streamed text: text that could still be the start of a stop string is held
 * back until the next piece shows whether it is, so no part of a stop string is ever emitted.
 */
export class StopMatcher {
  private readonly stops: string[];
  private pending = '';

  constructor(stops: readonly string[]) {
    for (const s of stops) if (typeof s !== 'string' || s.length === 0) throw new RangeError('stop strings must be non-empty strings');
    this.stops = [...stops];
  }

  /** Adds generated text; returns what may be shown now, and whether a stop string was reached. */
  push(text: string): { text: string; stopped: boolean } {
    this.pending += text;
    let at = -1;
    for (const s of this.stops) {
      const i = this.pending.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      const shown = this.pending.slice(0, at);
      this.pending = '';
      return { text: shown, stopped: true };
    }
    const hold = this.heldBack();
    const shown = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return { text: shown, stopped: false };
  }

  /** The held-back text, at the end of generation. */
  flush(): string {
    const rest = this.pending;
    this.pending = '';
    return rest;
  }

  /** Length of the longest end of the pending text that begins some stop string. */
  private heldBack(): number {
    let hold = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, this.pending.length); k > hold; k--) {
        if (this.pending.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    return hold;
  }
}
