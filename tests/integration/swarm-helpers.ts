import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { convert } from '../../manifests/node.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const NODE = join(ROOT, 'node_modules/.bin/node');
export const DOPPLER = join(ROOT, 'bin/doppler.mjs');
/** The small random-weight Mixtral fixture: at q8_0 it converts to 26 shards of ≈26 KB. */
export const FIXTURE = join(ROOT, '../shared/fixtures/hf-moe/mixtral-tiny');

/** Converts the fixture into a fresh temporary model directory. */
export async function makeModel(): Promise<{ dir: string; id: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'doppler-swarm-model-'));
  const r = await convert({ source: FIXTURE, out: dir, quant: 'q8_0' });
  return { dir, id: r.id };
}

export interface Proc {
  child: ChildProcess;
  /** stdout lines so far. */
  lines: string[];
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Processes and directories a test started, for cleanup in afterAll. */
export class Cleanup {
  private readonly procs: Proc[] = [];
  private readonly dirs: string[] = [];

  /** Runs `doppler <args>` and resolves once it has printed `lines` stdout lines. */
  async spawn(args: string[], lines: number, timeoutMs = 30_000): Promise<Proc> {
    const child = spawn(NODE, [DOPPLER, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    const p: Proc = {
      child,
      lines: [],
      stderr: () => err,
      exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    };
    this.procs.push(p);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    let partial = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`doppler ${args[0]} printed no ${lines} lines within ${timeoutMs} ms: ${err}`)), timeoutMs);
      const check = () => {
        if (p.lines.length >= lines) {
          clearTimeout(t);
          resolve();
        }
      };
      child.stdout!.on('data', (d: Buffer) => {
        partial += d.toString();
        const parts = partial.split('\n');
        partial = parts.pop()!;
        p.lines.push(...parts);
        check();
      });
      void p.exited.then((code) => {
        clearTimeout(t);
        if (p.lines.length < lines) reject(new Error(`doppler ${args.join(' ')} exited with ${code}: ${err}`));
      });
      check();
    });
    return p;
  }

  async tempDir(prefix: string): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), prefix));
    this.dirs.push(d);
    return d;
  }

  track(dir: string): void {
    this.dirs.push(dir);
  }

  async run(): Promise<void> {
    for (const p of this.procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(this.procs.map((p) => p.exited));
    await Promise.all(this.dirs.map((d) => rm(d, { recursive: true, force: true })));
  }
}

/** Runs `doppler <args>` to completion. */
export function runDoppler(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [DOPPLER, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`doppler ${args[0]} did not finish within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

export async function waitFor(what: string, cond: () => boolean, timeoutMs: number, everyMs = 100): Promise<number> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return Date.now() - start;
}
