/** The CLI's --backend wasm generates the reference backend's ids; an unknown backend is refused by name. */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = (args: string[]) => promisify(execFile)(process.execPath, ['bin/doppler.mjs', ...args], { cwd: ROOT });
const GENERATE = ['generate', 'models/tiny-moe-text-q8_0', '--prompt', 'In the beginning', '--max-new', '8', '--greedy', '--json'];

describe('doppler generate --backend', () => {
  it("wasm gives the cpu backend's greedy ids", async () => {
    const [wasm, cpu] = await Promise.all([run([...GENERATE, '--backend', 'wasm']), run([...GENERATE, '--backend', 'cpu'])]);
    const ids = (out: string) => (JSON.parse(out) as { generated_ids: number[] }).generated_ids;
    expect(ids(wasm.stdout)).toHaveLength(8);
    expect(ids(wasm.stdout)).toEqual(ids(cpu.stdout));
  });

  it('refuses an unknown backend, naming the choices', async () => {
    await expect(run([...GENERATE, '--backend', 'tpu'])).rejects.toMatchObject({ stderr: expect.stringMatching(/auto, webgpu, wasm or cpu, got "tpu"/) });
  });
});
