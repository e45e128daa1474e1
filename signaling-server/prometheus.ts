/** Prometheus text exposition (version 0.0.4) of a few gauges and counters. */
export interface PromSample {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  /** One value, or values by the label `model`. */
  value: number | Record<string, number>;
}

export function prometheusText(samples: PromSample[]): string {
  const out: string[] = [];
  for (const s of samples) {
    out.push(`# HELP ${s.name} ${s.help}`, `# TYPE ${s.name} ${s.type}`);
    if (typeof s.value === 'number') out.push(`${s.name} ${s.value}`);
    else for (const [model, v] of Object.entries(s.value)) out.push(`${s.name}{model="${model.replace(/["\\\n]/g, '_')}"} ${v}`);
  }
  return `${out.join('\n')}\n`;
}
