/** The live views, drawn on canvas: tiers, expert heat map, peers, speed. */

export interface TierBar {
  label: string;
  used: number;
  budget: number | null;
  /** Second line: hit rate, counts. */
  note: string;
  color: string;
}

export interface PeerRow {
  label: string;
  up: number;
  down: number;
  upRate: number;
  downRate: number;
}

const FONT = '12px system-ui, sans-serif';
const INK = '#1d2330';
const MUTED = '#6b7385';

function prepare(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const dpr = globalThis.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr)) canvas.width = Math.round(w * dpr);
  if (canvas.height !== Math.round(h * dpr)) canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext('2d')!;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = FONT;
  ctx.textBaseline = 'middle';
  return ctx;
}

export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} B`;
}

/** One bar per tier: bytes held against its budget, with its hit rate beside. */
export function drawTiers(canvas: HTMLCanvasElement, tiers: TierBar[]): void {
  const ctx = prepare(canvas);
  const w = canvas.clientWidth;
  const rowH = canvas.clientHeight / Math.max(tiers.length, 1);
  const x0 = 52;
  const barW = w - x0 - 8;
  tiers.forEach((t, i) => {
    const y = i * rowH + 4;
    ctx.fillStyle = INK;
    ctx.fillText(t.label, 4, y + 9);
    ctx.fillStyle = '#e7eaf0';
    ctx.fillRect(x0, y + 2, barW, 14);
    const frac = t.budget ? Math.min(1, t.used / t.budget) : t.used > 0 ? 1 : 0;
    ctx.fillStyle = t.color;
    ctx.fillRect(x0, y + 2, barW * frac, 14);
    ctx.fillStyle = INK;
    ctx.fillText(`${formatBytes(t.used)}${t.budget ? ` of ${formatBytes(t.budget)}` : ''}`, x0 + 4, y + 9);
    ctx.fillStyle = MUTED;
    ctx.fillText(t.note, x0, y + 27);
  });
}

/** Layers down, experts across; a cell's shade is how many of the recent tokens used that expert. */
export function drawHeatmap(canvas: HTMLCanvasElement, counts: number[][], tokens: number): void {
  const ctx = prepare(canvas);
  const layers = counts.length;
  const experts = counts[0]?.length ?? 0;
  if (layers === 0 || experts === 0) {
    ctx.fillStyle = MUTED;
    ctx.fillText('expert use appears here as tokens are generated', 4, 12);
    return;
  }
  const left = 30;
  const top = 16;
  const cw = (canvas.clientWidth - left - 4) / experts;
  const ch = (canvas.clientHeight - top - 4) / layers;
  ctx.fillStyle = MUTED;
  ctx.fillText(`experts →   (last ${tokens} tokens)`, left, 7);
  for (let l = 0; l < layers; l++) {
    ctx.fillStyle = MUTED;
    ctx.fillText(`L${l}`, 2, top + l * ch + ch / 2);
    for (let e = 0; e < experts; e++) {
      const v = tokens > 0 ? counts[l]![e]! / tokens : 0;
      ctx.fillStyle = `hsl(${230 - 200 * v}, 80%, ${94 - 50 * v}%)`;
      ctx.fillRect(left + e * cw + 1, top + l * ch + 1, cw - 2, ch - 2);
    }
  }
}

/** Peers this tab exchanged bytes with: totals and current rates. */
export function drawPeers(canvas: HTMLCanvasElement, rows: PeerRow[]): void {
  const ctx = prepare(canvas);
  if (rows.length === 0) {
    ctx.fillStyle = MUTED;
    ctx.fillText('no peers yet', 4, 12);
    return;
  }
  const max = Math.max(1, ...rows.map((r) => Math.max(r.up, r.down)));
  const w = canvas.clientWidth;
  rows.slice(0, 6).forEach((r, i) => {
    const y = 4 + i * 30;
    ctx.fillStyle = INK;
    ctx.fillText(r.label, 4, y + 6);
    ctx.fillStyle = MUTED;
    ctx.fillText(`↓ ${formatBytes(r.down)} (${formatBytes(r.downRate)}/s)   ↑ ${formatBytes(r.up)} (${formatBytes(r.upRate)}/s)`, 130, y + 6);
    ctx.fillStyle = '#3b82f6';
    ctx.fillRect(4, y + 15, (w - 8) * (r.down / max), 4);
    ctx.fillStyle = '#10b981';
    ctx.fillRect(4, y + 21, (w - 8) * (r.up / max), 4);
  });
}

/** Tokens per second of recent replies as a sparkline, with TTFT. */
export function drawSpeed(canvas: HTMLCanvasElement, tokPerS: number[], ttftMs: number | null): void {
  const ctx = prepare(canvas);
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  ctx.fillStyle = INK;
  const last = tokPerS.at(-1);
  ctx.fillText(`${last !== undefined ? last.toFixed(1) : '–'} tok/s   TTFT ${ttftMs !== null ? `${ttftMs.toFixed(0)} ms` : '–'}`, 4, 10);
  if (tokPerS.length < 2) return;
  const max = Math.max(...tokPerS) || 1;
  ctx.strokeStyle = '#8b5cf6';
  ctx.lineWidth = 2;
  ctx.beginPath();
  tokPerS.forEach((v, i) => {
    const x = 4 + (i / (tokPerS.length - 1)) * (w - 8);
    const y = h - 4 - (v / max) * (h - 26);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  });
  ctx.stroke();
}
