/**
 * `doppler chat` driven through stdin: streamed replies equal the chat session's, a second turn
 * reuses the cache, /reset forgets it, SIGINT (Ctrl-C) stops a long reply and the program goes
 * on to answer the next line; end of input exits cleanly.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChatSession, Engine } from '../../engine/index.ts';
import { modelDirSource } from '../../engine/node.ts';
import { createCpuBackend } from '../../kernels/index.ts';
import { makeChatModel } from './chat-model.ts';
import { Cleanup, DOPPLER, NODE, ROOT, waitFor } from './swarm-helpers.ts';

function startChat(dir: string, args: string[]) {
  const child = spawn(NODE, [DOPPLER, 'chat', dir, '--backend', 'cpu', ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out, exited };
}

const statsLines = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('['));

describe('doppler chat', () => {
  const cleanup = new Cleanup();
  let dir: string;
  let expected: string[];
  beforeAll(async () => {
    const m = await makeChatModel();
    cleanup.track(m.root);
    dir = m.dir;
    const session = new ChatSession(await Engine.load({ backend: createCpuBackend(), source: await modelDirSource(dir) }));
    const first = await session.chat([{ role: 'user', content: 'In the beginning' }], { maxTokens: 6, temperature: 0 }).result;
    const second = await session.chat([{ role: 'user', content: 'In the beginning' }, { role: 'assistant', content: first.text }, { role: 'user', content: 'And then?' }], { maxTokens: 6, temperature: 0 }).result;
    expected = [first.text, second.text];
    await session.close();
  });
  afterAll(() => cleanup.run());

  it('answers each line, keeps the conversation, and /reset starts over', async () => {
    const c = startChat(dir, ['--max-tokens', '6']);
    c.child.stdin.end('In the beginning\nAnd then?\n/reset\nIn the beginning\n');
    expect(await c.exited).toBe(0);
    expect(c.out.stdout).toBe(`${expected[0]}\n${expected[1]}\n${expected[0]}\n`);
    const stats = statsLines(c.out.stderr);
    expect(stats[0]).toMatch(/6 tokens · prefilled \d+, reused 0/);
    expect(stats[1]).toMatch(/reused [1-9]\d*/);
    expect(stats[2]).toBe('[conversation reset]');
    expect(stats[3]).toMatch(/prefilled \d+, reused 0/);
  });

  it('Ctrl-C stops the reply, not the program', async () => {
    const c = startChat(dir, ['--max-tokens', '900']);
    c.child.stdin.write('In the beginning\n');
    await waitFor('the reply to start', () => c.out.stdout.length > 20, 60_000);
    c.child.kill('SIGINT');
    await waitFor('the reply to stop', () => c.out.stderr.includes('[stopped'), 30_000);
    expect(c.out.stderr).not.toMatch(/ 900 tokens/);
    // still running: it takes the next lines, and a second Ctrl-C stops that reply too
    c.child.stdin.write('/reset\n');
    await waitFor('the reset', () => c.out.stderr.includes('[conversation reset]'), 30_000);
    const before = c.out.stdout.length;
    c.child.stdin.write('In the beginning\n');
    await waitFor('the next reply', () => c.out.stdout.length > before + 20, 60_000);
    c.child.kill('SIGINT');
    await waitFor('the second stop', () => c.out.stderr.split('[stopped').length === 3, 30_000);
    c.child.stdin.end();
    expect(await c.exited).toBe(0);
  });
});
