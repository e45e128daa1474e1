/**
 * Hostile or mistaken command lines get clear errors naming the flag, fast: fractional integers,
 * a missing --source directory, a --signal that is not a multiaddr, a signaling server that is
 * down; and the signaling server keeps serving while silent sockets and greedy peers try to
 * use up its limits.
 */
import { spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import { userCacheDir } from '../../cli/model-source.ts';
import { PeerRegistry, startSignalServer } from '../../signaling-server/node.ts';
import { MemoryShardStorage, SwarmPeer } from '../../swarm/index.ts';
import { createNodeLibp2p } from '../../swarm/node.ts';
import { ROOT } from './swarm-helpers.ts';

const DEMO = join(ROOT, 'models/tiny-moe-text-q8_0');
const ID = 'c'.repeat(64);
const SIGNAL = '/ip4/127.0.0.1/tcp/1/ws/p2p/12D3KooWEyoppNCUx8Yx66oV9fJnriXwCcXwDDUA2kj6vnc6iDEp';

async function run(args: string[]): Promise<{ code: number; err: string }> {
  const lines: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => void lines.push(a.join(' '));
  try {
    return { code: await main(args), err: lines.join('\n') };
  } finally {
    console.error = orig;
  }
}

describe('command-line mistakes', () => {
  it.each([
    [['convert', DEMO, '--out', '/tmp/x', '--workers', '2.5'], /--workers expects an integer in \[1, 1024\], got "2\.5"/],
    [['generate', DEMO, '--ids', '1', '--max-new', '1.5'], /--max-new expects an integer/],
    [['generate', DEMO, '--ids', '1', '--max-new=-3'], /--max-new expects an integer/],
    [['generate', DEMO, '--ids', '1', '--top-p', '7'], /--top-p expects a number in \[0, 1\]/],
    [['generate', DEMO, '--ids', '1', '--vram-mib', 'lots'], /--vram-mib expects a number/],
    [['signal', '--port', '70000'], /--port expects an integer in \[0, 65535\]/],
    [['join', ID, '--signal', SIGNAL, '--storage-mib', '1', '--replication', '0'], /--replication expects an integer in \[1, 64\]/],
    // one numeric flag per command: each is refused at parse time, before anything loads or connects
    [['serve', DEMO, '--port', '1.5'], /--port expects an integer in \[0, 65535\], got "1\.5"/],
    [['serve', DEMO, '--context', '0'], /--context expects an integer ≥ 1/],
    [['chat', DEMO, '--max-tokens=-1'], /--max-tokens expects an integer in \[1, 1000000\], got "-1"/],
    [['chat', DEMO, '--temperature', 'hot'], /--temperature expects a number ≥ 0/],
    [['chat', DEMO, '--seed', '0.5'], /--seed expects an integer ≥ 0/],
    [['generate', DEMO, '--ids', '1', '--seed=-2'], /--seed expects an integer ≥ 0/],
    [['demo', '--max-new', '1e9'], /--max-new expects an integer in \[0, 1000000\]/],
    [['seed', DEMO, '--signal', SIGNAL, '--storage-mib=-1'], /--storage-mib expects a number ≥ 0/],
    [['join', ID, '--signal', SIGNAL, '--heartbeat-ms', '10'], /--heartbeat-ms expects an integer in \[50, 3600000\]/],
    [['fetch', ID, '--signal', SIGNAL, '--out', '/tmp/x', '--timeout-s', '0'], /--timeout-s expects a number ≥ 0\.001/],
    [['signal', '--max-relay-s', 'forever'], /--max-relay-s expects a number ≥ 0\.001/],
    [['chat', DEMO, DEMO], /expected exactly one model/],
    [['perplexity'], /expected exactly one model/],
    [['synth', '--out', '/tmp/x', '--layers', '0'], /--layers expects an integer in \[1, 100000\]/],
    [['fetch', ID, '--signal', 'localhost:9090', '--out', '/tmp/x'], /--signal "localhost:9090" is not a multiaddr/],
    [['fetch', ID, '--signal', '/ip4/127.0.0.1/tcp/9090/ws', '--out', '/tmp/x'], /has no \/p2p\/<peer id> part/],
    [['generate', ID, '--ids', '1', '--source', 'swarm', '--signal', 'nope'], /--signal "nope" is not a multiaddr/],
    [['generate', DEMO, '--ids', '1', '--source', '/no/such/dir'], /--source \/no\/such\/dir: no such directory/],
  ])('%j → exit 2 naming the flag', async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
  });

  it('a signaling server that is down is named within seconds, not "no peer answered" or [object ErrorEvent]', async () => {
    const server = await startSignalServer({ port: 0 });
    const addr = server.addrs[0]!;
    await server.stop();
    const t0 = Date.now();
    const r = await run(['fetch', ID, '--signal', addr, '--out', await mkdtemp(join(tmpdir(), 'doppler-dead-')), '--timeout-s', '30']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot reach any signaling server/);
    expect(r.err).not.toMatch(/object ErrorEvent|no peer/);
    expect(Date.now() - t0).toBeLessThan(12_000);
  });

  it('swarm shards go to the user cache directory, never the working directory', () => {
    const prev = process.env.XDG_CACHE_HOME;
    process.env.XDG_CACHE_HOME = '/var/cache/someone';
    try {
      expect(userCacheDir(ID)).toBe(`/var/cache/someone/doppler/${ID}`);
    } finally {
      if (prev === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = prev;
    }
    expect(userCacheDir(ID).startsWith(process.cwd())).toBe(false);
  });
});

describe('bench script mistakes', () => {
  it.each([
    ['serve.ts', '--clients', '1.5', /--clients expects an integer in \[1, 1024\], got "1\.5"/],
    ['paged.ts', '--tokens', '0', /--tokens expects an integer ≥ 1/],
    ['cpu-gemv.ts', '--reps', 'x', /--reps expects an integer ≥ 1/],
    ['prefetch.ts', '--seqs', '2.5', /--seqs expects an integer ≥ 1/],
    ['storage-wait.ts', '--mbps', '0', /--mbps expects a number ≥ 0\.001/],
    ['convert.ts', '--synthetic-gb', 'lots', /--synthetic-gb expects a number/],
    ['swarm.ts', '--peers', '2.5', /--peers expects an integer in \[1, 1000\]/],
  ])('bench/%s %s %s → exit 2 naming the flag, before any work', (script, flag, value, message) => {
    const r = spawnSync(join(ROOT, 'node_modules/.bin/node'), [join(ROOT, 'bench', script), flag, value], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
  }, 60_000);
});

describe('signaling server limits', () => {
  const sockets: Socket[] = [];
  afterAll(() => {
    for (const s of sockets) s.destroy();
  });

  it('one peer registering 10,000 model ids is capped; other peers and new models are not blocked; lapsed entries are freed', () => {
    const r = new PeerRegistry({ ttlMs: 1000 });
    let refused = 0;
    for (let i = 0; i < 10_000; i++) {
      try {
        r.register(i.toString(16).padStart(64, '0'), 'greedy', ['/a'], 64, 0);
      } catch {
        refused++;
      }
    }
    expect(refused).toBe(10_000 - 8);
    expect(Object.keys(r.counts())).toHaveLength(8);
    expect(r.register('f'.repeat(64), 'honest', ['/b'], 64, 0)).toEqual([]);
    expect(r.counts()['f'.repeat(64)]).toBe(1);
    r.sweep(5000);
    expect(r.counts()).toEqual({});
    // the greedy peer's lapsed registrations no longer count against it
    expect(() => r.register('e'.repeat(64), 'greedy', ['/a'], 64, 5000)).not.toThrow();
  });

  it('twenty silent sockets do not lock new peers out', async () => {
    const server = await startSignalServer({ port: 0 });
    try {
      const port = Number(/\/tcp\/(\d+)\//.exec(server.addrs[0]!)![1]);
      for (let i = 0; i < 20; i++) sockets.push(connect(port, '127.0.0.1'));
      await new Promise((r) => setTimeout(r, 300));
      const t0 = Date.now();
      const peer = await SwarmPeer.start({ node: await createNodeLibp2p(), modelId: ID, signal: server.addrs, storage: new MemoryShardStorage() });
      expect(Date.now() - t0).toBeLessThan(8000);
      // it got through to the directory, not merely started
      expect(server.metrics().registrations[ID]).toBe(1);
      await peer.stop();
    } finally {
      for (const s of sockets) s.destroy();
      await server.stop();
    }
  });
});
