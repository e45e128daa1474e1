import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointError, ConfigError, MODEL_FILES, tensorByName, type WeightDtype } from '../../../manifests/index.ts';
import { convert, readModelDir, readShardFile, verifyModelDir } from '../../../manifests/node.ts';
import { errorVersusBound } from './bounds.ts';
import { FIXTURE_DIRS, FIXTURES, hfName, readFixture, readSafetensors, toF32, writeSafetensors } from './helpers.ts';

const ROOT = join(import.meta.dirname, '../../..');
const NODE = join(ROOT, 'node_modules/.bin/node');
const CLI = join(ROOT, 'bin/doppler.mjs');
const work = mkdtempSync(join(tmpdir(), 'rdrr-convert-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const doppler = (...args: string[]) => spawnSync(NODE, [CLI, ...args], { encoding: 'utf8' });

describe.each(FIXTURE_DIRS)('convert %s', (fixture) => {
  const src = join(FIXTURES, fixture);
  const source = readFixture(src);
  const arch = (JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')) as { model_type: string }).model_type;

  it.each(['f32', 'f16', 'q8_0', 'q4_0'] as WeightDtype[])('at %s: verifies, b3sum agrees, dequantizes within bounds', async (quant) => {
    const out = join(work, `${fixture.replace('/', '_')}-${quant}`);
    const { manifest, id } = await convert({ source: src, out, quant });
    expect((await verifyModelDir(out)).ok).toBe(true);
    expect((await readModelDir(out)).id).toBe(id);

    const files = readdirSync(join(out, MODEL_FILES.shards));
    const b3 = execFileSync('b3sum', files, { cwd: join(out, MODEL_FILES.shards), encoding: 'utf8' }).trim().split('\n');
    expect(b3).toHaveLength(files.length);
    for (const line of b3) {
      const [hash, name] = line.split(/\s+/);
      expect(hash).toBe(name);
    }

    // Every source tensor is used once; experts get exactly one shard each, holding only that expert.
    expect(manifest.tensors).toHaveLength(source.size);
    const { numExperts } = manifest.config.moe;
    const moeLayers = manifest.config.numLayers - manifest.config.moe.denseLayers.length;
    expect(manifest.experts).toHaveLength(moeLayers * numExperts);
    const shardOwners = new Map<number, string>();
    for (const e of manifest.experts) {
      expect(e.shards).toHaveLength(1);
      expect(manifest.shards[e.shards[0]!]!.kind).toBe('expert');
      shardOwners.set(e.shards[0]!, `layers.${e.layer}.moe.experts.${e.expert}.`);
    }
    expect(shardOwners.size).toBe(manifest.experts.length);
    for (const t of manifest.tensors) {
      const owner = shardOwners.get(t.shard);
      if (owner) expect(t.name.startsWith(owner)).toBe(true);
      else expect(t.name).not.toMatch(/\.experts\./);
    }

    let worst = 0;
    const byShard = new Map<number, Uint8Array>();
    for (const t of manifest.tensors) {
      const raw = source.get(hfName(arch, t.name));
      expect(raw, t.name).toBeDefined();
      expect(t.shape).toEqual(raw!.shape);
      if (!byShard.has(t.shard)) byShard.set(t.shard, await readShardFile(out, manifest.shards[t.shard]!.hash));
      const bytes = byShard.get(t.shard)!.subarray(t.offset, t.offset + t.length);
      expect(t.offset % 256).toBe(0);
      if (/norm|router/.test(t.name)) expect(t.dtype).toBe('f32');
      else expect(t.dtype).toBe(quant === 'f32' || quant === 'f16' || t.shape[1]! % 32 === 0 ? quant : 'f16');
      worst = Math.max(worst, errorVersusBound(t, bytes, toF32(raw!)));
    }
    expect(worst).toBeLessThanOrEqual(1);
    if (quant !== 'f32') expect(worst).toBeGreaterThan(0.3);

    if (existsSync(join(src, 'tokenizer.json'))) {
      const blob = await readShardFile(out, manifest.tokenizer['tokenizer.json']!);
      expect(Buffer.from(blob).equals(readFileSync(join(src, 'tokenizer.json')))).toBe(true);
    }
  });
});

describe('parallel convert', () => {
  it('worker threads produce the identical model; a failure in one stops all and leaves no manifest', async () => {
    const src = join(FIXTURES, 'tiny-moe-text');
    const serial = await convert({ source: src, out: join(work, 'par-1'), quant: 'q4_0', workers: 1 });
    const parallel = await convert({ source: src, out: join(work, 'par-2'), quant: 'q4_0', workers: 2 });
    expect(parallel.id).toBe(serial.id);
    expect((await verifyModelDir(join(work, 'par-2'))).ok).toBe(true);
    const out = join(work, 'par-fail');
    const stop = (p: { shardsDone: number }) => {
      if (p.shardsDone === 5) throw new Error('injected failure');
    };
    await expect(convert({ source: src, out, quant: 'q8_0', workers: 2, onProgress: stop })).rejects.toThrow('injected failure');
    expect(existsSync(join(out, MODEL_FILES.manifest))).toBe(false);
  });
});

describe('transformers-5 fused expert tensors', () => {
  it('[E, 2I, H] gate_up and [E, H, I] down, or their transposes, give the same model as per-expert tensors', async () => {
    // mixtral-tiny: H = 64, 2I = 256, so the two layouts cannot be confused (when H == 2I the transformers-5 one is assumed).
    const src = join(FIXTURES, 'hf-moe/mixtral-tiny');
    const tensors = readSafetensors(join(src, 'model.safetensors'));
    const reference = await convert({ source: src, out: join(work, 'fused-ref'), quant: 'f32' });
    for (const transposed of [false, true]) {
      const dir = join(work, `fused-src-${transposed}`);
      mkdirSync(dir, { recursive: true });
      copyFileSync(join(src, 'config.json'), join(dir, 'config.json'));
      const out: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
      const E = 8, I = 128, H = 64;
      for (const [name, t] of tensors) if (!/\.experts\.\d+\./.test(name)) out[name] = { dtype: t.dtype, shape: t.shape, data: t.bytes };
      for (let l = 0; l < 3; l++) {
        const gu = new Float32Array(E * 2 * I * H);
        const dn = new Float32Array(E * H * I);
        for (let e = 0; e < E; e++) {
          const g = toF32(tensors.get(`model.layers.${l}.block_sparse_moe.experts.${e}.w1.weight`)!);
          const u = toF32(tensors.get(`model.layers.${l}.block_sparse_moe.experts.${e}.w3.weight`)!);
          const d = toF32(tensors.get(`model.layers.${l}.block_sparse_moe.experts.${e}.w2.weight`)!);
          for (let r = 0; r < I; r++) for (let c = 0; c < H; c++) {
            if (transposed) {
              gu[e * H * 2 * I + c * 2 * I + r] = g[r * H + c]!;
              gu[e * H * 2 * I + c * 2 * I + I + r] = u[r * H + c]!;
              dn[e * I * H + r * H + c] = d[c * I + r]!;
            } else {
              gu[e * 2 * I * H + r * H + c] = g[r * H + c]!;
              gu[e * 2 * I * H + (I + r) * H + c] = u[r * H + c]!;
              dn[e * H * I + c * I + r] = d[c * I + r]!;
            }
          }
        }
        out[`model.layers.${l}.mlp.experts.gate_up_proj`] = { dtype: 'F32', shape: transposed ? [E, H, 2 * I] : [E, 2 * I, H], data: new Uint8Array(gu.buffer) };
        out[`model.layers.${l}.mlp.experts.down_proj`] = { dtype: 'F32', shape: transposed ? [E, I, H] : [E, H, I], data: new Uint8Array(dn.buffer) };
      }
      writeSafetensors(join(dir, 'model.safetensors'), out);
      const r = await convert({ source: dir, out: join(work, `fused-out-${transposed}`), quant: 'f32', name: 'mixtral-tiny' });
      expect(r.manifest.shards).toEqual(reference.manifest.shards);
      expect(r.manifest.tensors).toEqual(reference.manifest.tensors);
    }
  });
});

describe('bad input', () => {
  const mixtral = join(FIXTURES, 'hf-moe/mixtral-tiny');
  /** A copy of mixtral-tiny whose safetensors file is replaced by `bytes` (or whose config is edited). */
  function brokenSource(name: string, edit: { weights?: Buffer; config?: (c: Record<string, unknown>) => void }): string {
    const dir = join(work, `bad-${name}`);
    mkdirSync(dir, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(mixtral, 'config.json'), 'utf8')) as Record<string, unknown>;
    edit.config?.(cfg);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
    if (edit.weights) writeFileSync(join(dir, 'model.safetensors'), edit.weights);
    else symlinkSync(join(mixtral, 'model.safetensors'), join(dir, 'model.safetensors'));
    return dir;
  }
  const weights = readFileSync(join(mixtral, 'model.safetensors'));

  const cases: [string, () => string, RegExp][] = [
    ['truncated data', () => brokenSource('trunc', { weights: weights.subarray(0, weights.length - 1000) }), /model\.safetensors: tensor .*truncated/],
    ['truncated header', () => brokenSource('trunch', { weights: weights.subarray(0, 100) }), /model\.safetensors: truncated/],
    ['malformed header', () => {
      const w = Buffer.from(weights);
      w.write('{{{{', 8);
      return brokenSource('malformed', { weights: w });
    }, /model\.safetensors: header is not valid JSON/],
    ['absurd header length', () => {
      const w = Buffer.from(weights);
      w.writeBigUInt64LE(1n << 40n, 0);
      return brokenSource('hlen', { weights: w });
    }, /header length .* not plausible/],
    ['missing tensor', () => {
      const t = readSafetensors(join(mixtral, 'model.safetensors'));
      const out: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
      for (const [k, v] of t) if (k !== 'model.layers.1.block_sparse_moe.experts.3.w2.weight') out[k] = { dtype: v.dtype, shape: v.shape, data: v.bytes };
      const dir = brokenSource('missing', {});
      rmSync(join(dir, 'model.safetensors'));
      writeSafetensors(join(dir, 'model.safetensors'), out);
      return dir;
    }, /model\.layers\.1\.block_sparse_moe\.experts\.3\.w2\.weight.* missing for architecture mixtral/],
    ['unsupported dtype', () => {
      const t = readSafetensors(join(mixtral, 'model.safetensors'));
      const out: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
      for (const [k, v] of t) out[k] = k === 'model.norm.weight' ? { dtype: 'I32', shape: v.shape, data: v.bytes } : { dtype: v.dtype, shape: v.shape, data: v.bytes };
      const dir = brokenSource('dtype', {});
      rmSync(join(dir, 'model.safetensors'));
      writeSafetensors(join(dir, 'model.safetensors'), out);
      return dir;
    }, /model\.norm\.weight has dtype I32; only F32, F16, BF16/],
    ['unsupported architecture', () => brokenSource('arch', { config: (c) => (c['model_type'] = 'gpt2') }), /config\.json: unsupported architecture "gpt2"/],
    ['shape disagreeing with config', () => brokenSource('shape', { config: (c) => (c['intermediate_size'] = 96) }), /has shape \[128, 64\], config\.json implies \[96, 64\]/],
  ];

  it.each(cases)('%s: one clear error naming the file, exit 1, previous model untouched', (_, make, message) => {
    const dir = make();
    const out = join(work, `bad-out-${_.replace(/\W/g, '')}`);
    const good = doppler('convert', mixtral, '--out', out, '--quant', 'q8_0');
    expect(good.status).toBe(0);
    const before = readFileSync(join(out, MODEL_FILES.manifest));
    const r = doppler('convert', dir, '--out', out, '--quant', 'q4_0');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n').length).toBeLessThanOrEqual(2);
    expect(readFileSync(join(out, MODEL_FILES.manifest)).equals(before)).toBe(true);
    expect(doppler('verify', out).status).toBe(0);
  });

  it('verify reports a corrupt and a missing shard and exits 1; a corrupt shard read throws ShardIntegrityError', async () => {
    const out = join(work, 'corrupt');
    const { manifest } = await convert({ source: mixtral, out, quant: 'q8_0' });
    const a = manifest.shards[3]!.hash;
    const b = manifest.shards[4]!.hash;
    const bytes = readFileSync(join(out, 'shards', a));
    bytes[100] ^= 1;
    writeFileSync(join(out, 'shards', a), bytes);
    rmSync(join(out, 'shards', b));
    const r = doppler('verify', out);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain(`corrupt  ${a}`);
    expect(r.stdout).toContain(`missing  ${b}`);
    await expect(readShardFile(out, a)).rejects.toThrow(/corrupt, its bytes hash to/);
  });

  it('an unparseable manifest is one clear error for verify and inspect', () => {
    const out = join(work, 'garbage-manifest');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, MODEL_FILES.manifest), Buffer.from([0x92, 0xc1, 0xff, 0x00]));
    for (const cmd of ['verify', 'inspect']) {
      const r = doppler(cmd, out);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/manifest\.msgpack: (not a msgpack manifest|malformed manifest)/);
    }
  });

  it('typed errors from the API', async () => {
    await expect(convert({ source: join(work, 'nope'), out: join(work, 'o') })).rejects.toBeInstanceOf(ConfigError);
    await expect(convert({ source: brokenSource('api-trunc', { weights: weights.subarray(0, 50) }), out: join(work, 'o2') })).rejects.toBeInstanceOf(CheckpointError);
  });
});

describe('interrupted convert', () => {
  const src = join(FIXTURES, 'tiny-moe-text');

  it('a failure mid-way leaves no manifest in a fresh directory, and a previous model intact and verifiable', async () => {
    const fresh = join(work, 'int-fresh');
    const stop = (after: number) => (p: { shardsDone: number }) => {
      if (p.shardsDone === after) throw new Error('injected failure');
    };
    await expect(convert({ source: src, out: fresh, quant: 'q8_0', onProgress: stop(10) })).rejects.toThrow('injected failure');
    expect(existsSync(join(fresh, MODEL_FILES.manifest))).toBe(false);
    expect(readdirSync(join(fresh, 'shards')).filter((f) => f.startsWith('.tmp'))).toEqual([]);

    const prev = await convert({ source: src, out: fresh, quant: 'q4_0' });
    await expect(convert({ source: src, out: fresh, quant: 'f16', onProgress: stop(20) })).rejects.toThrow('injected failure');
    expect((await readModelDir(fresh)).id).toBe(prev.id);
    expect((await verifyModelDir(fresh)).ok).toBe(true);
  });

  it('SIGKILL at any moment leaves either no manifest or a complete, verifiable model', async () => {
    for (const delayMs of [150, 300, 450]) {
      const out = join(work, `killed-${delayMs}`);
      const { spawn } = await import('node:child_process');
      const child = spawn(NODE, [CLI, 'convert', src, '--out', out, '--quant', 'f32'], { stdio: 'ignore' });
      const exited = new Promise((r) => child.once('exit', r));
      await new Promise((r) => setTimeout(r, delayMs));
      child.kill('SIGKILL');
      await exited;
      if (existsSync(join(out, MODEL_FILES.manifest))) expect((await verifyModelDir(out)).ok).toBe(true);
      else if (existsSync(join(out, 'shards'))) {
        for (const f of readdirSync(join(out, 'shards')).filter((n) => !n.startsWith('.tmp'))) {
          await expect(readShardFile(out, f)).resolves.toBeInstanceOf(Uint8Array); // named files are always whole
        }
      }
      // A rerun completes and cleans up the temporaries.
      const r = await convert({ source: src, out, quant: 'f32' });
      expect((await verifyModelDir(out)).ok).toBe(true);
      expect(readdirSync(join(out, 'shards')).filter((f) => f.startsWith('.tmp'))).toEqual([]);
      expect(tensorByName(r.manifest).size).toBe(r.manifest.tensors.length);
    }
  });
});
