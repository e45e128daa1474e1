/** Counters of the API server, written in Prometheus' text exposition format. */
export class ApiMetrics {
  private readonly counters = new Map<string, number>();
  private readonly gauges = new Map<string, () => number>();
  private readonly help = new Map<string, { help: string; type: 'counter' | 'gauge' }>();

  count(name: string, labels: Record<string, string>, by = 1): void {
    const key = series(name, labels);
    this.counters.set(key, (this.counters.get(key) ?? 0) + by);
  }

  gauge(name: string, labels: Record<string, string>, read: () => number): void {
    this.gauges.set(series(name, labels), read);
  }

  describe(name: string, type: 'counter' | 'gauge', help: string): void {
    this.help.set(name, { help, type });
  }

  text(): string {
    const lines: string[] = [];
    const all = [...[...this.counters].map(([k, v]) => [k, v] as const), ...[...this.gauges].map(([k, f]) => [k, f()] as const)];
    for (const [name, { help, type }] of this.help) {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [k, v] of all) if (k === name || k.startsWith(`${name}{`)) lines.push(`${k} ${v}`);
    }
    return lines.join('\n') + '\n';
  }
}

function series(name: string, labels: Record<string, string>): string {
  const l = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"`);
  return l.length ? `${name}{${l.join(',')}}` : name;
}
