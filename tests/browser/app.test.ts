/**
 * The browser product end to end: `doppler signal --seed` (in-process here) serves the page and
 * the demo model's swarm on one port; tabs load the model from the swarm into OPFS, chat, reload
 * warm, load from each other, survive a corrupting peer, and run on the WASM backend without WebGPU.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { buildApp } from '../../app/build.ts';
import { startSignalServer, type SignalServer } from '../../signaling-server/node.ts';
import { startNodePeer } from '../../swarm/node.ts';
import type { SwarmPeer } from '../../swarm/index.ts';
import { Cleanup, ROOT, runDoppler } from '../integration/swarm-helpers.ts';
import type { PageState } from '../../app/page-state.ts';
import { DEMO_ID_PROMPT, chat, launch, pageState, waitLoaded } from './app-helpers.ts';

const MODEL = join(ROOT, 'models/tiny-moe-text-q8_0');
const MAX_NEW = 6;

describe('the app page', () => {
  const cleanup = new Cleanup();
  let server: SignalServer;
  let browser: Browser;
  let modelId: string;
  let cliIds: { input: number[]; generated: number[] };

  beforeAll(async () => {
    const appDir = await buildApp(await cleanup.tempDir('doppler-app-'));
    server = await startSignalServer({ port: 0, seeds: [MODEL], appDir });
    modelId = server.seeds[0]!.modelId;
    browser = await launch();
    const cli = await runDoppler(['generate', MODEL, '--prompt', DEMO_ID_PROMPT, '--max-new', String(MAX_NEW), '--greedy', '--json', '--backend', 'cpu'], 120_000);
    expect(cli.code, cli.stderr).toBe(0);
    const out = JSON.parse(cli.stdout) as { input_ids: number[]; generated_ids: number[] };
    cliIds = { input: out.input_ids, generated: out.generated_ids };
  });

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await cleanup.run();
  });

  const url = () => `${server.httpUrl}/?model=${modelId}`;

  it('lists the model, loads it from the swarm, replies as `doppler generate` does, and reloads warm from OPFS', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(server.httpUrl);
    await page.waitForSelector('#modelrows tr td');
    expect(await page.textContent('#modelrows')).toContain('tiny-moe-text');

    await page.goto(url());
    const cold = await waitLoaded(page);
    expect(cold.errors).toEqual([]);
    expect(cold.phase).toBe('ready');
    expect(cold.warm).toBe(false);
    expect(cold.loadCounters!.networkBytes).toBeGreaterThan(0);
    // Every shard the page loaded came from the server's own seeder, over the same port.
    const serverId = server.node.peerId.toString();
    expect(cold.shardLog.filter((e) => e.from[0] !== 'opfs').every((e) => e.from.join() === serverId)).toBe(true);
    expect(cold.backendNote).toMatch(/software adapter/);

    const reply = await chat(page, DEMO_ID_PROMPT, MAX_NEW);
    expect(reply.promptTokens).toBe(cliIds.input.length);
    expect(reply.ids).toEqual(cliIds.generated);
    // Experts are paged through the worker's store with the prefetcher predicting the next layer.
    expect(reply.stats.prefetch!.nextLayer.layers).toBeGreaterThan(0);
    expect(await page.textContent('#templatenote')).toContain('no chat template');
    // The next turn continues the same text: the KV cache of the first is reused, only new tokens prefilled.
    const second = await chat(page, ' And', 2);
    expect(second.stats.reusedTokens).toBeGreaterThanOrEqual(cliIds.input.length);
    expect(second.stats.prefilledTokens).toBeLessThan(second.promptTokens);
    expect(await page.textContent('#transcript')).toContain('reused from the KV cache');
    // Stop ends a long reply at once.
    const stopped = await chat(page, ' The', 900, async () => {
      // on a fast CPU path 900 tokens take seconds: press Stop on the first animation frame that shows a token
      await page.waitForFunction(() => document.querySelector('#transcript .turn.model:last-child .cont')!.textContent!.length > 0, null, { timeout: 120_000, polling: 'raf' });
      await page.evaluate(() => (document.querySelector('#stop') as HTMLButtonElement).click());
    });
    expect(stopped.finishReason).toBe('abort');
    expect(stopped.ids.length).toBeLessThan(900);

    await page.reload();
    const warm = await waitLoaded(page);
    expect(warm.warm).toBe(true);
    expect(warm.loadCounters!.networkBytes).toBe(0);
    expect(warm.loadCounters!.opfsHits).toBeGreaterThan(0);
    expect(await page.textContent('#loadtime')).toMatch(/warm load from OPFS: \d+ ms, no shard bytes from the network \(cold load was/);
    expect((await chat(page, DEMO_ID_PROMPT, MAX_NEW)).ids).toEqual(cliIds.generated);
    await ctx.close();
  });

  it('keeps OPFS within a budget smaller than the model, says so, and still chats', async () => {
    const ctx = await browser.newContext();
    await ctx.addInitScript(() => localStorage.setItem('doppler.budgetMiB', '2'));
    const page = await ctx.newPage();
    await page.goto(url());
    const s = await waitLoaded(page);
    expect(s.errors).toEqual([]);
    expect((await chat(page, DEMO_ID_PROMPT, MAX_NEW)).ids).toEqual(cliIds.generated);
    await page.waitForSelector('#keepnote:has-text("smaller than the model")');
    const after = await pageState(page);
    expect(after.opfsBudget).toBe(2 * 2 ** 20);
    expect(after.opfsBytes).toBeGreaterThan(0);
    expect(after.opfsBytes).toBeLessThanOrEqual(2 * 2 ** 20);
    await ctx.close();
  });

  it('a tab closed mid-download leaves nothing half-written; the next load resumes from what it stored', async () => {
    const ctx = await browser.newContext();
    const first = await ctx.newPage();
    await first.goto(url());
    await first.waitForFunction(() => (globalThis as unknown as { doppler: PageState }).doppler.shardLog.length >= 3, null, { timeout: 120_000, polling: 20 });
    await first.close();
    const again = await ctx.newPage();
    await again.goto(url());
    const s = await waitLoaded(again);
    expect(s.errors).toEqual([]);
    expect(s.loadCounters!.opfsHits).toBeGreaterThan(0);
    expect(s.loadCounters!.corrupt).toBe(0);
    const stored = await again.evaluate(() => (globalThis as unknown as { dopplerVerifyStored(): Promise<{ files: number; bad: string[] }> }).dopplerVerifyStored());
    expect(stored.bad).toEqual([]);
    expect((await chat(again, DEMO_ID_PROMPT, MAX_NEW)).ids).toEqual(cliIds.generated);
    await ctx.close();
  });

  it('refuses an unknown model id with a clear message', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${server.httpUrl}/?model=${'e'.repeat(64)}`);
    const s = await waitLoaded(page, 60_000);
    expect(s.phase).toBe('failed');
    expect(s.errors.join('\n')).toContain(`model ${'e'.repeat(64)} is not in this swarm`);
    await page.goto(`${server.httpUrl}/?model=nope`);
    expect((await waitLoaded(page, 60_000)).errors.join('\n')).toContain('"nope" is not a model id');
    await page.goto(`${url()}&backend=gpu`);
    expect((await waitLoaded(page, 60_000)).errors.join('\n')).toContain('?backend= must be one of auto, webgpu, wasm, cpu, got "gpu"');
    await ctx.close();
  });

  it('without WebGPU runs on the WASM backend (measured against the TypeScript one), says so, and replies as `doppler generate` does', async () => {
    // A document the test's route fulfils (below) has no address space, so Chromium's local-network
    // checks would block its WebSocket to 127.0.0.1; the served page is not affected.
    const noGpu = await launch(false, ['LocalNetworkAccessChecks']);
    try {
      const ctx = await noGpu.newContext();
      const page = await ctx.newPage();
      await page.goto(url());
      const s = await waitLoaded(page);
      expect(s.errors).toEqual([]);
      expect(s.backend, JSON.stringify(s.engine!.trials)).toBe('wasm');
      expect(s.engine!.trials.map((t) => t.name)).toEqual(['webgpu', 'wasm', 'cpu']);
      console.log(`app without WebGPU: ${s.engine!.trials.map((t) => `${t.name} ${t.ms?.toFixed(2) ?? t.error}`).join(', ')}`);
      // Cross-origin isolated (the server's COOP/COEP): the worker starts the backend's own workers, nested, from a Blob URL.
      const cores = await page.evaluate(() => navigator.hardwareConcurrency);
      expect(s.engine!.threads).toBe(cores);
      expect(s.backendNote).toMatch(new RegExp(`^no WebGPU in this browser \\(.+\\): running on the CPU \\(WebAssembly SIMD, ${cores} threads?\\)`));
      expect(await page.textContent('#backendnote')).toContain('no WebGPU in this browser');
      expect(await page.textContent('#whoami')).toContain('CPU (WebAssembly SIMD');
      expect((await chat(page, DEMO_ID_PROMPT, MAX_NEW)).ids).toEqual(cliIds.generated);
      // The verdict is remembered: the next visit skips the probes and says why.
      await page.reload();
      const again = await waitLoaded(page);
      expect(again.backend).toBe('wasm');
      expect(again.engine!.trials).toEqual([]);
      expect(again.backendNote).toMatch(/^no WebGPU in this browser .*\(remembered from this browser's last visit\): running on the CPU \(WebAssembly SIMD/);
      await ctx.close();

      // A page that is not cross-origin isolated (COOP/COEP stripped from the document) has no SharedArrayBuffer: one thread, and the page says so.
      const plain = await noGpu.newContext();
      await plain.route((u) => u.pathname === '/', async (route) => {
        const response = await route.fetch();
        const headers = { ...response.headers() };
        delete headers['cross-origin-opener-policy'];
        delete headers['cross-origin-embedder-policy'];
        await route.fulfill({ response, headers });
      });
      const p = await plain.newPage();
      await p.goto(`${url()}&backend=wasm`);
      const single = await waitLoaded(p);
      expect(single.errors).toEqual([]);
      expect(single.engine!.threads).toBe(1);
      expect(single.backendNote).toMatch(/^the WASM backend chosen in the URL \(\?backend=wasm\): running on the CPU \(WebAssembly SIMD, 1 thread\)\. SharedArrayBuffer is unavailable .*single-threaded\.$/);
      expect((await chat(p, DEMO_ID_PROMPT, MAX_NEW)).ids).toEqual(cliIds.generated);
      await plain.close();
    } finally {
      await noGpu.close();
    }
  });

  // Last in this group: it stops the server's seeder.
  it('a tab in another context loads every shard from the first tab after the seeder stops; a corrupting peer is banned and nothing corrupt is stored', async () => {
    const ctxA = await browser.newContext();
    const a = await ctxA.newPage();
    await a.goto(url());
    const stateA = await waitLoaded(a);
    expect(stateA.phase).toBe('ready');
    await a.waitForFunction(() => {
      const d = (globalThis as unknown as { doppler: { heldShards: number; totalShards: number } }).doppler;
      return d.totalShards > 0 && d.heldShards === d.totalShards;
    }, null, { timeout: 240_000, polling: 250 });
    const aId = (await pageState(a)).peerId!;
    await server.seeds[0]!.stop();

    // A Node peer whose every shard is damaged joins the swarm before tab B.
    const bad = await mkdtemp(join(tmpdir(), 'doppler-corrupt-'));
    cleanup.track(bad);
    await cp(MODEL, bad, { recursive: true });
    for (const name of await readdir(join(bad, 'shards'))) {
      const p = join(bad, 'shards', name);
      const bytes = await readFile(p);
      // every 64 KiB, so that any piece of any shard it serves is wrong
      for (let i = 0; i < bytes.length; i += 65536) bytes[i]! ^= 0x5a;
      await writeFile(p, bytes);
    }
    let corrupt: SwarmPeer | undefined;
    try {
      // an attacker does not re-hash its own files (an honest peer would refuse them: verifyExisting)
      corrupt = await startNodePeer({ dir: bad, signal: server.addrs, evict: false, verifyExisting: false, heartbeatMs: 500, discoveryMs: 1000 });
      const ctxB = await browser.newContext();
      const b = await ctxB.newPage();
      await b.goto(url());
      const loaded = await waitLoaded(b);
      expect(loaded.errors).toEqual([]);
      expect(loaded.phase).toBe('ready');
      // After loading, the tab keeps the whole model: wait for it, so that "every shard" is checked.
      await b.waitForFunction(() => {
        const d = (globalThis as unknown as { doppler: { heldShards: number; totalShards: number } }).doppler;
        return d.totalShards > 0 && d.heldShards === d.totalShards;
      }, null, { timeout: 240_000, polling: 250 });
      const stateB = await pageState(b);
      const fetched = stateB.shardLog.filter((e) => e.from[0] !== 'opfs');
      expect(new Set(fetched.map((e) => e.hash)).size).toBe(stateB.totalShards);
      // Per-peer counters: every fetched shard came from tab A; the stopped seeder sent nothing.
      expect(fetched.filter((e) => e.from.includes(corrupt!.id)), `tab A is ${aId}, the corrupt peer ${corrupt.id}`).toEqual([]);
      expect(fetched.filter((e) => e.from.includes(aId)).length).toBeGreaterThan(0);
      expect(stateB.traffic[aId]!.down).toBeGreaterThanOrEqual(stateB.counters!.networkBytes);
      expect(stateB.traffic[server.node.peerId.toString()]?.down ?? 0).toBe(0);
      expect((await chat(b, DEMO_ID_PROMPT, MAX_NEW)).ids).toEqual(cliIds.generated);
      // Whoever first gets its bad bytes bans it: a tab that tries it for a shard, or one that spot-checks
      // its claim to hold shards (each tab compares a random range of a shard it holds, every heartbeat).
      let after = await pageState(b);
      const bannedBy = async () => [...(after = await pageState(b)).banned, ...(await pageState(a)).banned];
      for (const t0 = Date.now(); !(await bannedBy()).includes(corrupt.id) && Date.now() - t0 < 60_000;) await new Promise((r) => setTimeout(r, 500));
      expect(corrupt.stats().uploadedBytes).toBeGreaterThan(0);
      expect(await bannedBy()).toContain(corrupt.id);
      const stored = await b.evaluate(() => (globalThis as unknown as { dopplerVerifyStored(): Promise<{ files: number; bad: string[] }> }).dopplerVerifyStored());
      expect(stored.files).toBeGreaterThan(10);
      expect(stored.bad).toEqual([]);
      console.log(`app: tab B got ${fetched.length} shards from tab A; corrupt peer uploaded ${corrupt.stats().uploadedBytes} bytes, banned by tab B: ${after.banned.includes(corrupt.id)}`);
      await ctxB.close();
    } finally {
      await corrupt?.stop();
      await ctxA.close();
    }
  });
});

describe('the app page while its server restarts', () => {
  it('backs off retrying the lost server, says when the next try is, and resumes when the server is back', async () => {
    const cleanup = new Cleanup();
    const keyFile = join(await cleanup.tempDir('doppler-key-'), 'server.key');
    const appDir = await buildApp(await cleanup.tempDir('doppler-app-'));
    let server = await startSignalServer({ port: 0, keyFile, seeds: [MODEL], appDir });
    const port = Number(new URL(server.httpUrl).port);
    const browser = await launch();
    try {
      // A budget below the model's size: the tab keeps only what it uses, so the reply's experts must come from the server.
      const ctx = await browser.newContext();
      await ctx.addInitScript(() => localStorage.setItem('doppler.budgetMiB', '1'));
      const page = await ctx.newPage();
      await page.goto(`${server.httpUrl}/?model=${server.seeds[0]!.modelId}`);
      expect((await waitLoaded(page)).phase).toBe('ready');
      await server.stop();
      const reply = chat(page, DEMO_ID_PROMPT, 3, async () => {
        // Tries 1 s, 2 s, 4 s … apart (±20 %), said on the page; the server returns after the third failure.
        await page.waitForFunction(() => ((globalThis as unknown as { doppler: PageState }).doppler.signaling?.failures ?? 0) >= 3, null, { timeout: 60_000, polling: 100 });
        const down = await pageState(page);
        const { failures, retryDelayMs } = down.signaling!;
        const base = Math.min(30_000, 1000 * 2 ** (failures - 1));
        expect(retryDelayMs).toBeGreaterThanOrEqual(0.8 * base);
        expect(retryDelayMs).toBeLessThanOrEqual(1.2 * base);
        expect(down.swarmStatus).toMatch(/server unreachable, retrying (in \d+ s|now) \(try \d+\)/);
        expect(await page.textContent('#swarmstatus')).toContain('server unreachable, retrying');
        server = await startSignalServer({ port, keyFile, seeds: [MODEL], appDir });
      });
      expect((await reply).ids).toHaveLength(3);
      const s = await pageState(page);
      expect(s.errors).toEqual([]);
      // Reached again: the backoff starts over and the page says nothing more.
      expect(s.signaling).toMatchObject({ failures: 0, retryAt: null });
      expect(s.swarmStatus).toBeNull();
    } finally {
      await browser.close();
      await server.stop();
      await cleanup.run();
    }
  });
});
