/**
 * Swarm throughput and swarm-vs-origin distribution, on loopback.
 *   node_modules/.bin/node bench/swarm.ts [--peers 10] [--cap-mib-s 4] [--no-browser]
 * Writes bench/results/swarm.json.
 */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { convert } from '../manifests/node.ts';
import { startSignalServer, type SignalServer } from '../signaling-server/node.ts';
import { createNodeLibp2p, startNodePeer } from '../swarm/node.ts';
import { MemoryShardStorage, SwarmPeer, type SwarmPeerOptions } from '../swarm/index.ts';
import { withBrowser } from '../tests/browser/harness.ts';
import { benchArgs, invocation } from './invocation.ts';
import { intFlag, numFlag } from '../cli/command.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIXTURE = join(ROOT, '../shared/fixtures/tiny-moe-text');
const MiB = 2 ** 20;
const { values: args } = benchArgs({ peers: intFlag(1, 1000), 'cap-mib-s': numFlag(0.001), 'no-browser': { type: 'boolean' }, 'max-uploads': intFlag(1), only: { type: 'string' } });
const MAX_UPLOADS = args['max-uploads'] ? Number(args['max-uploads']) : undefined;
/** Run only some parts (comma-separated: node,multi,swarm,tab); default all. */
const ONLY = new Set((args.only ?? 'node,multi,swarm,tab').split(','));
const PEERS = Number(args.peers ?? 10);
const CAP = Number(args['cap-mib-s'] ?? 4) * MiB;
const FAST = { heartbeatMs: 500, discoveryMs: 1000 };

const tmp = await mkdtemp(join(tmpdir(), 'doppler-bench-swarm-'));
const stopList: { stop(): Promise<void> }[] = [];
const log = (s: string) => process.stderr.write(`${s}\n`);

async function model(quant: 'q8_0' | 'f32') {
  const out = join(tmp, quant);
  const r = await convert({ source: FIXTURE, out, quant });
  return { dir: out, id: r.id, bytes: r.manifest.totals.bytes, shards: r.manifest.shards.length };
}

async function leecher(server: SignalServer, modelId: string, extra: Partial<SwarmPeerOptions> = {}): Promise<SwarmPeer> {
  const p = await SwarmPeer.start({ node: await createNodeLibp2p(), modelId, signal: server.addrs, storage: new MemoryShardStorage(), ...FAST, ...extra });
  stopList.push(p);
  return p;
}

async function stopAll(): Promise<void> {
  for (const p of stopList.splice(0)) await p.stop().catch(() => undefined);
}

async function timed<T>(fn: () => Promise<T>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

async function waitPeers(p: SwarmPeer, n: number): Promise<void> {
  while (p.peers().length < n) await p.waitForUpdate(200);
}

const results: Record<string, unknown> = {};
const loadAtStart = loadavg()[0]!;
const server = await startSignalServer({ port: 0 });
try {
  const f32 = await model('f32');
  const q8 = await model('q8_0');
  log(`models: f32 ${f32.bytes} B in ${f32.shards} shards, q8_0 ${q8.bytes} B in ${q8.shards} shards`);

  // 1. Node ↔ Node, one source, no cap: the whole f32 model (49 shards, 0.9–8.7 MB).
  if (ONLY.has('node')) {
    const seed = await startNodePeer({ dir: f32.dir, signal: server.addrs, evict: false, ...FAST });
    stopList.push(seed);
    const runs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await leecher(server, f32.id);
      await waitPeers(p, 1);
      await p.getManifest();
      runs.push(f32.bytes / MiB / (await timed(() => p.fetchAll({ concurrency: 1 }))));
      await p.stop();
    }
    results.nodeToNode = { transport: 'TCP + noise + yamux, loopback, same process', model: 'tiny-moe-text f32', bytes: f32.bytes, concurrency: 1, mibPerSec: runs.map((r) => +r.toFixed(1)) };
    log(`node↔node: ${runs.map((r) => r.toFixed(1)).join(', ')} MiB/s`);
    await stopAll();
  }

  // 2. One fetcher, capped sources: pieces from 3 sources vs 1.
  if (ONLY.has('multi')) {
    const cap = 8 * MiB;
    const srcs: SwarmPeer[] = [];
    for (let i = 0; i < 3; i++) {
      const s = await startNodePeer({ dir: f32.dir, signal: server.addrs, evict: false, uploadBytesPerSec: cap, ...FAST });
      stopList.push(s);
      srcs.push(s);
    }
    const multi = await leecher(server, f32.id, { pieceBytes: 256 * 1024 });
    await waitPeers(multi, 3);
    await multi.getManifest();
    const tMulti = await timed(() => multi.fetchAll({ concurrency: 2 }));
    await multi.stop();
    await srcs[1]!.stop();
    await srcs[2]!.stop();
    const single = await leecher(server, f32.id, { pieceBytes: 256 * 1024 });
    await waitPeers(single, 1);
    await single.getManifest();
    const tSingle = await timed(() => single.fetchAll({ concurrency: 2 }));
    results.multiSource = {
      model: 'tiny-moe-text f32', bytes: f32.bytes, uploadCapMiBPerSecPerSource: cap / MiB, pieceBytes: 256 * 1024,
      oneSource: { seconds: +tSingle.toFixed(2), mibPerSec: +(f32.bytes / MiB / tSingle).toFixed(1) },
      threeSources: { seconds: +tMulti.toFixed(2), mibPerSec: +(f32.bytes / MiB / tMulti).toFixed(1) },
    };
    log(`multi-source: 1 source ${tSingle.toFixed(2)} s, 3 sources ${tMulti.toFixed(2)} s`);
    await stopAll();
  }

  // 3. N peers obtain the q8_0 model from one seeder, every peer's upload capped at CAP:
  //    through the swarm (peers trade shards) vs each downloading from the seeder alone.
  for (const mode of ONLY.has('swarm') ? (['origin-only', 'swarm'] as const) : []) {
    const slots = MAX_UPLOADS !== undefined ? { maxUploads: MAX_UPLOADS } : {};
    const seed = await startNodePeer({ dir: q8.dir, signal: server.addrs, evict: false, uploadBytesPerSec: CAP, ...slots, ...FAST });
    stopList.push(seed);
    const ps: SwarmPeer[] = [];
    for (let i = 0; i < PEERS; i++) ps.push(await leecher(server, q8.id, { uploadBytesPerSec: CAP, keepFetched: mode === 'swarm', ...slots }));
    for (const p of ps) {
      await waitPeers(p, mode === 'swarm' ? PEERS : 1);
      await p.getManifest();
    }
    const t0 = performance.now();
    const each = await Promise.all(ps.map(async (p) => {
      await p.fetchAll({ concurrency: 4 });
      return (performance.now() - t0) / 1000;
    }));
    const seedUp = seed.stats().uploadedBytes;
    results[mode === 'swarm' ? 'swarm' : 'originOnly'] = {
      peers: PEERS, uploadCapMiBPerSec: CAP / MiB, maxUploads: MAX_UPLOADS ?? 4, model: 'tiny-moe-text q8_0', bytes: q8.bytes,
      allDoneSeconds: +Math.max(...each).toFixed(2), meanSeconds: +(each.reduce((a, b) => a + b, 0) / each.length).toFixed(2),
      seederUploadedMiB: +(seedUp / MiB).toFixed(1), idealOriginOnlySeconds: +((PEERS * q8.bytes) / CAP).toFixed(2),
    };
    log(`${mode}: all ${PEERS} done in ${Math.max(...each).toFixed(2)} s; seeder uploaded ${(seedUp / MiB).toFixed(1)} MiB`);
    await stopAll();
  }

  // 4. Tab ↔ tab over WebRTC in headless Chromium.
  if (!args['no-browser'] && ONLY.has('tab')) {
    const page = join(ROOT, 'tests/browser/swarm-page.ts');
    results.tabToTab = await withBrowser(page, async ({ newPage }) => {
      const a = await newPage();
      const b = await newPage();
      await a.waitForFunction(() => window.dopplerSwarm !== undefined);
      await b.waitForFunction(() => window.dopplerSwarm !== undefined);
      const idA = await a.evaluate((o) => window.dopplerSwarm.start(o), { signal: server.addrs, modelId: q8.id, seedFrom: '/model/' });
      await b.evaluate((o) => window.dopplerSwarm.start(o), { signal: server.addrs, modelId: q8.id });
      await b.waitForFunction((id) => window.dopplerSwarm.peers().includes(id), idA, { timeout: 30_000 });
      const r = await b.evaluate(() => window.dopplerSwarm.fetchAll());
      const conns = await b.evaluate((id) => window.dopplerSwarm.connections(id), idA);
      log(`tab↔tab: ${r.bytes} B in ${r.ms.toFixed(0)} ms`);
      return { transport: conns.filter((c) => !c.limited).map((c) => c.addr), model: 'tiny-moe-text q8_0', bytes: r.bytes, verified: r.verified, seconds: +(r.ms / 1000).toFixed(2), mibPerSec: +(r.bytes / MiB / (r.ms / 1000)).toFixed(1), note: 'sequential gets, hashing each blob in the tab' };
    }, { mounts: { '/model/': q8.dir } });
  }
} finally {
  await stopAll();
  await server.stop();
  await rm(tmp, { recursive: true, force: true });
}

const out = {
  bench: 'swarm',
  command: invocation('swarm.ts'),
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, loadAverageAtStart: +loadAtStart.toFixed(2), loadAverageAtEnd: +loadavg()[0]!.toFixed(2), note: 'all Node peers in one process; loopback; the machine is shared, so figures move with its load' },
  results,
};
await mkdir(join(ROOT, 'bench/results'), { recursive: true });
await writeFile(join(ROOT, 'bench/results/swarm.json'), JSON.stringify(out, null, 2) + '\n');
console.log(JSON.stringify(out, null, 2));
