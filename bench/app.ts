/**
 * The browser app in headless Chromium against `doppler signal --seed` (in-process): cold load of
 * the demo model from the swarm, warm loads from OPFS (goal: under 300 ms to ready), TTFT and
 * tok/s in the page next to `doppler generate` on the same backend, and tab↔tab shard throughput
 * (a second browser context fetching the whole model from the first after the seeder stops).
 *
 *   node_modules/.bin/node bench/app.ts [--runs 5] [--tokens 32] [--out bench/results/app.json]
 *
 * Refuses to overwrite an existing results file unless --out names it.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildApp } from '../app/build.ts';
import { startSignalServer } from '../signaling-server/node.ts';
import { chat, launch, pageState, waitLoaded } from '../tests/browser/app-helpers.ts';
import { ROOT, runDoppler } from '../tests/integration/swarm-helpers.ts';
import { invocation } from './invocation.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, tokens: { type: 'string', default: '32' }, out: { type: 'string' } } });
const out = values.out ?? join(ROOT, 'bench/results/app.json');
if (!values.out && existsSync(out)) throw new Error(`${out} exists; pass --out to overwrite it or to write elsewhere`);
const runs = Number(values.runs);
const tokens = Number(values.tokens);
const PROMPT = 'In the beginning';
const MODEL = join(ROOT, 'models/tiny-moe-text-q8_0');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const round = (x: number, d = 1) => +x.toFixed(d);
const log = (s: string) => process.stderr.write(`${s}\n`);
const loadAtStart = loadavg()[0]!;

const server = await startSignalServer({ port: 0, seeds: [MODEL], appDir: await buildApp() });
const url = `${server.httpUrl}/?model=${server.seeds[0]!.modelId}`;
const browser = await launch();
try {
  const ctxA = await browser.newContext();
  const a = await ctxA.newPage();
  let t0 = performance.now();
  await a.goto(url);
  const cold = await waitLoaded(a);
  const coldWallMs = performance.now() - t0;
  if (cold.phase !== 'ready') throw new Error(`the page failed: ${cold.errors.join('; ')}`);
  log(`cold: ${cold.loadMs!.toFixed(0)} ms to ready (${coldWallMs.toFixed(0)} ms from navigation), backend ${cold.backend}`);
  const pageTurn = await chat(a, PROMPT, tokens);
  log(`page: TTFT ${pageTurn.stats.ttftMs.toFixed(0)} ms, ${pageTurn.stats.decodeTokPerS.toFixed(1)} tok/s`);

  const warm: { loadMs: number; wallMs: number; networkBytes: number }[] = [];
  for (let i = 0; i < runs; i++) {
    t0 = performance.now();
    await a.reload();
    const s = await waitLoaded(a);
    warm.push({ loadMs: round(s.loadMs!), wallMs: round(performance.now() - t0), networkBytes: s.loadCounters!.networkBytes });
    log(`warm ${i + 1}: ${s.loadMs!.toFixed(0)} ms to ready, ${s.loadCounters!.networkBytes} network bytes`);
  }

  const cli = await runDoppler(['generate', MODEL, '--prompt', PROMPT, '--max-new', String(tokens), '--greedy', '--json', '--backend', cold.backend!], 300_000);
  if (cli.code !== 0) throw new Error(`doppler generate failed: ${cli.stderr}`);
  const cliStats = (JSON.parse(cli.stdout) as { stats: { ttftMs: number; decodeTokPerS: number; generatedTokens: number } }).stats;
  log(`cli: TTFT ${cliStats.ttftMs.toFixed(0)} ms, ${cliStats.decodeTokPerS.toFixed(1)} tok/s`);

  // tab↔tab: A keeps the whole model, the seeder stops, B fetches everything from A.
  await a.waitForFunction(() => {
    const d = (globalThis as unknown as { doppler: { heldShards: number; totalShards: number } }).doppler;
    return d.totalShards > 0 && d.heldShards === d.totalShards;
  }, null, { timeout: 300_000, polling: 250 });
  const aId = (await pageState(a)).peerId!;
  await server.seeds[0]!.stop();
  const ctxB = await browser.newContext();
  const b = await ctxB.newPage();
  t0 = performance.now();
  await b.goto(url);
  await waitLoaded(b);
  await b.waitForFunction(() => {
    const d = (globalThis as unknown as { doppler: { heldShards: number; totalShards: number } }).doppler;
    return d.totalShards > 0 && d.heldShards === d.totalShards;
  }, null, { timeout: 300_000, polling: 100 });
  const tabMs = performance.now() - t0;
  const sb = await pageState(b);
  const fromA = sb.traffic[aId]?.down ?? 0;
  log(`tab↔tab: ${fromA} bytes from tab A in ${tabMs.toFixed(0)} ms`);

  const result = {
    bench: 'app',
    command: invocation('app.ts'),
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, browser: browser.version(), loadAverageAtStart: round(loadAtStart, 2), loadAverageAtEnd: round(loadavg()[0]!, 2), note: 'headless Debian Chromium, loopback; the machine is shared, so figures move with its load' },
    model: 'tiny-moe-text q8_0 (13.6 MB, 49 shards)',
    backend: { page: cold.backend, note: cold.backendNote },
    load: {
      coldMsToReady: round(cold.loadMs!), coldMsFromNavigation: round(coldWallMs), coldNetworkBytes: cold.loadCounters!.networkBytes,
      warmMsToReady: { median: median(warm.map((w) => w.loadMs)), runs: warm }, warmGoalMs: 300,
      note: 'to ready = from the page asking for the model to the engine being ready (manifest, dense weights, tokenizer, one warm-up token); experts are paged in as the router picks them',
    },
    generation: {
      prompt: PROMPT, tokens,
      page: { ttftMs: round(pageTurn.stats.ttftMs), decodeTokPerS: round(pageTurn.stats.decodeTokPerS), generated: pageTurn.ids.length, note: 'first turn after a cold load: experts arrive from the swarm during it' },
      cli: { ttftMs: round(cliStats.ttftMs), decodeTokPerS: round(cliStats.decodeTokPerS), generated: cliStats.generatedTokens, note: 'doppler generate on the model directory, all experts resident' },
    },
    tabToTab: { bytesFromTabA: fromA, seconds: round(tabMs / 1000, 2), mibPerSec: round(fromA / 2 ** 20 / (tabMs / 1000)), note: 'tab B from navigation until it holds the whole model, every byte from tab A over WebRTC (the seeder stopped)' },
  };
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, JSON.stringify(result, null, 2) + '\n');
  console.log(JSON.stringify(result, null, 2));
} finally {
  await browser.close();
  await server.stop();
}
