/**
 * Swarm scaling: an in-process swarm of N libp2p peers (memory transport between peers, the signaling
 * server on loopback WebSockets), each membership design at each size, every phase bounded in time.
 *   node_modules/.bin/node bench/swarm-scale.ts [--sizes 10,30,100] [--membership mesh,gossip] [--phase-s 150] [--window-s 20] [--out file]
 * Writes bench/results/swarm-scale.json (an existing file only with --out naming it).
 *
 * Per run: join (every peer knows every other), converge (every shard on `r` storage peers), control
 * bytes per peer per minute in steady state (all bytes received on raw connections minus shard
 * payload), fetch of models/tiny-moe-text-q8_0 by a fresh peer, heal after 30% of the storage peers
 * are stopped (every shard back on `r` live storage peers). 'mesh' is the design before gossipsub.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { blake3Hex } from '../manifests/index.ts';
import { startSignalServer } from '../signaling-server/node.ts';
import { shardListOf } from '../swarm/index.ts';
import { FsShardStorage } from '../swarm/node.ts';
import { replicated, startMember, type Member } from '../tests/integration/in-process-swarm.ts';
import { invocation } from './invocation.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MODEL = join(ROOT, 'models/tiny-moe-text-q8_0');
const { values: args } = parseArgs({ options: {
  sizes: { type: 'string' }, membership: { type: 'string' }, 'phase-s': { type: 'string' }, 'window-s': { type: 'string' }, out: { type: 'string' },
} });
const SIZES = (args.sizes ?? '10,30,100').split(',').map(Number);
const MEMBERSHIPS = (args.membership ?? 'mesh,gossip').split(',') as ('mesh' | 'gossip')[];
const PHASE_MS = Number(args['phase-s'] ?? 150) * 1000;
const WINDOW_MS = Number(args['window-s'] ?? 20) * 1000;
const OUT = args.out ?? join(ROOT, 'bench/results/swarm-scale.json');
const R = 3;
if (!args.out && existsSync(OUT)) throw new Error(`${OUT} exists: pass --out to write elsewhere (or to replace it on purpose)`);
for (const m of MEMBERSHIPS) if (m !== 'mesh' && m !== 'gossip') throw new Error(`--membership: "${m}" is neither mesh nor gossip`);
for (const n of SIZES) if (!Number.isInteger(n) || n < 3) throw new Error(`--sizes: ${n} is not an integer ≥ 3`);

const log = (s: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` until true or the phase bound; the seconds it took, or null when it never held. */
async function until(cond: () => boolean, t0 = performance.now()): Promise<number | null> {
  while (!cond()) {
    if (performance.now() - t0 > PHASE_MS) return null;
    await sleep(100);
  }
  return round((performance.now() - t0) / 1000);
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

async function run(membership: 'mesh' | 'gossip', n: number, manifest: Uint8Array, modelId: string) {
  const shards = shardListOf(JSON.parse(await readFile(join(MODEL, 'manifest.json'), 'utf8')));
  const total = shards.reduce((a, s) => a + s.size, 0);
  const largest = Math.max(...shards.map((s) => s.size));
  // room for r copies even after 30% of the storage peers are gone
  const budget = Math.max(2 * largest, Math.ceil((2.5 * R * total) / (n - 1)));
  const server = await startSignalServer({ port: 0 });
  const all: Member[] = [];
  const out: Record<string, unknown> = { membership, peers: n, storagePeers: n - 1, budgetBytes: budget };
  try {
    const seeder = await startMember(server, modelId, membership, { storage: await FsShardStorage.open(MODEL, { verify: false }), manifestBytes: manifest, evict: false });
    all.push(seeder);
    const storers: Member[] = [];
    let startFailures = 0;
    const t0 = performance.now();
    // started ten at a time, as a swarm fills in practice; join is timed from the first start
    for (let i = 1; i < n; i += 10) {
      // a peer that cannot start (the loaded signaling server timing out its handshakes) is counted and left out
      const batch = await Promise.allSettled(Array.from({ length: Math.min(10, n - i) }, () => startMember(server, modelId, membership, { budgetBytes: budget })));
      for (const b of batch) {
        if (b.status === 'fulfilled') {
          storers.push(b.value);
          all.push(b.value);
        } else {
          startFailures++;
        }
      }
    }
    out.startS = round((performance.now() - t0) / 1000);
    out.startFailures = startFailures;
    out.joinS = await until(() => all.every((m) => m.peer.peers().length >= all.length - 1), t0);
    out.peersKnownMin = Math.min(...all.map((m) => m.peer.peers().length));
    const held = (live: Member[]) => replicated(live, shards, R);
    out.convergeS = await until(() => held(storers), t0);
    log(`${membership} n=${n}: join ${out.joinS} s, converge ${out.convergeS} s`);

    const before = all.map((m) => ({ bytes: m.bytesIn(), data: m.peer.stats().downloadedBytes }));
    await sleep(WINDOW_MS);
    const perMin = all.map((m, i) => ((m.bytesIn() - before[i]!.bytes - (m.peer.stats().downloadedBytes - before[i]!.data)) * 60_000) / WINDOW_MS);
    out.controlBytesPerPeerPerMin = { mean: Math.round(perMin.reduce((a, b) => a + b, 0) / perMin.length), max: Math.round(Math.max(...perMin)) };
    out.connectionsPerPeer = round(all.reduce((a, m) => a + m.peer.node.getConnections().length, 0) / all.length, 1);
    log(`${membership} n=${n}: control ${JSON.stringify(out.controlBytesPerPeerPerMin)} B/peer/min, ${out.connectionsPerPeer} connections/peer`);

    const f0 = performance.now();
    const fetched = await Promise.race([startMember(server, modelId, membership, {}).then(async (fresh) => {
      all.push(fresh);
      await fresh.peer.fetchAll();
      return true;
    }), sleep(PHASE_MS).then(() => false)]).catch((err: Error) => {
      log(`fetch failed: ${err.message}`);
      return false;
    });
    out.fetchS = fetched ? round((performance.now() - f0) / 1000) : null;
    log(`${membership} n=${n}: fresh peer fetched the model in ${out.fetchS} s`);

    // the seeder stays: with r = 3, stopping 30% at random would often take every copy of some shard
    const killed = storers.filter((_, i) => i % 10 < 3);
    const live = storers.filter((m) => !killed.includes(m));
    const h0 = performance.now();
    await Promise.all(killed.map((m) => m.peer.stop().catch(() => undefined)));
    out.killed = killed.length;
    out.healS = await until(() => held(live), h0);
    log(`${membership} n=${n}: healed after killing ${killed.length} in ${out.healS} s`);
    for (const m of killed) all.splice(all.indexOf(m), 1);
  } finally {
    await Promise.all(all.map((m) => m.peer.stop().catch(() => undefined)));
    await server.stop();
  }
  return out;
}

const manifest = await readFile(join(MODEL, 'manifest.msgpack'));
const modelId = await blake3Hex(manifest);
const results = {
  command: invocation('swarm-scale.ts'),
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, loadAvg1mAtStart: round(loadavg()[0]!) },
  model: 'models/tiny-moe-text-q8_0',
  replication: R,
  phaseBoundS: PHASE_MS / 1000,
  windowS: WINDOW_MS / 1000,
  note: "'mesh' is the design before (a heartbeat stream to every peer, 64-peer lists); 'gossip' announces shard maps on a gossipsub topic with ~8 neighbours. null: the phase did not finish within phaseBoundS.",
  runs: [] as Record<string, unknown>[],
};
for (const n of SIZES) {
  for (const m of MEMBERSHIPS) {
    results.runs.push({ ...(await run(m, n, manifest, modelId)), loadAvg1m: round(loadavg()[0]!) });
    await mkdir(dirname(OUT), { recursive: true });
    await writeFile(OUT, JSON.stringify(results, null, 1) + '\n');
  }
}
log(`wrote ${OUT}`);
process.exit(0);
