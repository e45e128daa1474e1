/**
 * Manifest-only synth speed: `doppler synth --manifest-only` on a layer subset of a real preset
 * (wall and CPU seconds, children included, from /usr/bin/time), and the two BLAKE3s on one staged
 * 1 GiB file. Writes bench/results/synth.json (or --out); never replaces a result unasked.
 *   node_modules/.bin/node bench/synth.ts [--preset deepseek-v3-671b] [--layers 4] [--out FILE]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createBLAKE3 } from 'hash-wasm';
import { invocation } from './invocation.ts';

const { values } = parseArgs({ options: { preset: { type: 'string', default: 'deepseek-v3-671b' }, layers: { type: 'string', default: '4' }, out: { type: 'string' } } });
const path = values.out ?? new URL('./results/synth.json', import.meta.url).pathname;
if (!values.out && existsSync(path)) throw new Error(`${path} exists: give --out to replace it`);
const ROOT = new URL('..', import.meta.url).pathname;
const work = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'synth-bench-'));

/** Wall and CPU seconds of a command, its children included (GNU time). */
function timed(cmd: string[]): { wallS: number; cpuS: number; stdout: string } {
  const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %U %S', ...cmd], { cwd: ROOT, encoding: 'utf8' });
  const m = /TIME ([\d.]+) ([\d.]+) ([\d.]+)/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`${cmd.join(' ')} failed: ${r.stderr}`);
  return { wallS: Number(m[1]), cpuS: Number(m[2]) + Number(m[3]), stdout: r.stdout };
}

try {
  const synthCmd = ['node_modules/.bin/node', 'bin/doppler.mjs', 'synth', '--arch', 'deepseek_v3', '--preset', values.preset!, '--quant', 'q4_0', '--layers', values.layers!, '--out', join(work, 'm'), '--manifest-only'];
  const load = loadavg()[0];
  const s = timed(synthCmd);
  const bytes = Number(/([\d.]+) GB hashed/.exec(s.stdout)?.[1]) * 1e9;

  const file = join(work, 'blob');
  const GIB = 2 ** 30;
  spawnSync('sh', ['-c', `head -c ${GIB} /dev/urandom > ${file}`]);
  const b3 = timed(['b3sum', '--no-names', file]);
  const b3one = timed(['b3sum', '--no-names', '--num-threads', '1', file]);
  const h = await createBLAKE3();
  h.init();
  const buf = new Uint8Array(8 * 2 ** 20);
  const fd = openSync(file, 'r');
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let n; (n = readSync(fd, buf)) > 0;) h.update(buf.subarray(0, n));
  const wasmHex = h.digest('hex');
  const c = process.cpuUsage(c0);
  const wasm = { wallS: (performance.now() - t0) / 1000, cpuS: (c.user + c.system) / 1e6 };
  closeSync(fd);
  if (wasmHex !== b3.stdout.trim()) throw new Error('hash-wasm and b3sum disagree');

  const result = {
    bench: 'synth',
    command: invocation('synth.ts'),
    loadAverage1mAtStart: load,
    synth: { command: synthCmd.join(' '), bytesHashed: bytes, wallS: s.wallS, cpuS: s.cpuS, mbPerS: bytes / 1e6 / s.wallS, cpuSPerGB: s.cpuS / (bytes / 1e9) },
    blake3OneGiB: {
      b3sumAllThreads: { ...b3, stdout: undefined, mbPerCpuS: GIB / 1e6 / b3.cpuS },
      b3sumOneThread: { ...b3one, stdout: undefined, mbPerCpuS: GIB / 1e6 / b3one.cpuS },
      hashWasm: { ...wasm, mbPerCpuS: GIB / 1e6 / wasm.cpuS },
    },
  };
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  writeFileSync(path, JSON.stringify(result, null, 2) + '\n');
  console.log(JSON.stringify(result, null, 2));
} finally {
  rmSync(work, { recursive: true, force: true });
}
