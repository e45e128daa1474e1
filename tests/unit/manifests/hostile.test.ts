/**
 * Hostile model files: manifests whose fields have the wrong type, range or cross-reference;
 * configs claiming absurd sizes in a few bytes; safetensors whose tensors alias each other;
 * FIFOs and directories where files should be. Each is refused quickly, naming what is wrong.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, decodeManifest, ManifestError, CheckpointError, MODEL_FILES } from '../../../manifests/index.ts';
import { convert, readModelDir, readShardFile, verifyModelDir, PRESETS } from '../../../manifests/node.ts';
import { main } from '../../../cli/main.ts';
import { FIXTURES, writeSafetensors } from './helpers.ts';

const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false, mapsAsObjects: true });
const work = mkdtempSync(join(tmpdir(), 'rdrr-hostile-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

type Encoded = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test surgery on raw msgpack

let model: string;
let encoded: Encoded;
beforeAll(async () => {
  model = join(work, 'model');
  await convert({ source: join(FIXTURES, 'hf-moe/mixtral-tiny'), out: model, quant: 'q8_0' });
  encoded = packr.unpack(readFileSync(join(model, MODEL_FILES.manifest))) as Encoded;
});

/** The converted manifest's raw fields, changed by `edit`, re-encoded (as a hostile peer could). */
function tampered(edit: (e: Encoded) => void): Uint8Array {
  const e = structuredClone(encoded);
  edit(e);
  return packr.pack(e);
}

/** The same manifest stored as full tables (the form with per-tensor offsets). */
function asTables(e: Encoded): void {
  const m = decodeManifest(readFileSync(join(model, MODEL_FILES.manifest)));
  delete e.layout;
  e.tables = {
    tensors: {
      names: m.tensors.map((t) => t.name), shapes: m.tensors.map((t) => t.shape), dtypes: Uint8Array.from(m.tensors, (t) => ['f32', 'f16', 'q8_0', 'q4_0'].indexOf(t.dtype)),
      shard: m.tensors.map((t) => t.shard), offset: m.tensors.map((t) => t.offset), length: m.tensors.map((t) => t.length),
    },
    sizes: m.shards.map((s) => s.size),
    kinds: Uint8Array.from(m.shards, (s) => (s.kind === 'dense' ? 0 : 1)),
    experts: { layer: m.experts.map((x) => x.layer), expert: m.experts.map((x) => x.expert), shards: m.experts.map((x) => x.shards), bytes: m.experts.map((x) => x.bytes) },
  };
}

describe('manifest schema at decode', () => {
  it('accepts the untouched manifest in both encodings', () => {
    expect(() => decodeManifest(tampered(() => undefined))).not.toThrow();
    expect(() => decodeManifest(tampered(asTables))).not.toThrow();
  });

  it.each([
    ['a null tensor offset', (e: Encoded) => { asTables(e); e.tables.tensors.offset[3] = null; }, /tensors\[3\] \(.+\)\.offset must be an integer/],
    ['a string tensor length', (e: Encoded) => { asTables(e); e.tables.tensors.length[0] = '12'; }, /tensors\[0\] \(embed\)\.length must be an integer/],
    ['a misaligned offset', (e: Encoded) => { asTables(e); e.tables.tensors.offset[1] += 4; }, /offset \d+ is not a multiple of 256/],
    ['two tensors on the same bytes', (e: Encoded) => { asTables(e); e.tables.tensors.offset[2] = e.tables.tensors.offset[1]; e.tables.tensors.shard[2] = e.tables.tensors.shard[1]; }, /overlap/],
    ['a tensor past its shard', (e: Encoded) => { asTables(e); e.tables.sizes[0] = 256; }, /lies outside its shard/],
    ['a shape the config does not imply', (e: Encoded) => { asTables(e); e.tables.tensors.shapes[0] = [1, 1]; }, /tensors\[0\] \(embed\)\.shape is \[1,1\], the config implies/],
    ['an expert on a missing shard', (e: Encoded) => { asTables(e); e.tables.experts.shards[0] = [9999]; }, /missing shard 9999/],
    ['no config', (e: Encoded) => { delete e.config; }, /config must be an object, got nothing \(missing\)/],
    ['no totals', (e: Encoded) => { delete e.totals; }, /totals must be an object, got nothing \(missing\)/],
    ['totals that disagree with the shards', (e: Encoded) => { e.totals.bytes += 1; }, /totals\.bytes is \d+, the shards hold/],
    ['a string layer count', (e: Encoded) => { e.config.numLayers = '3'; }, /config\.numLayers must be an integer/],
    ['a negative hidden size', (e: Encoded) => { e.config.hiddenSize = -64; }, /config\.hiddenSize must be an integer/],
    ['top-k above the expert count', (e: Encoded) => { e.config.moe.topK = 99; }, /config\.moe\.topK must be an integer in \[1, 8\]/],
    ['an EOS id outside the vocabulary', (e: Encoded) => { e.config.eosTokenIds = [1e9]; }, /config\.eosTokenIds\[0\]/],
    ['a NaN norm epsilon', (e: Encoded) => { e.config.rmsNormEps = NaN; }, /config\.rmsNormEps must be a positive finite number/],
    ['an unknown architecture', (e: Encoded) => { e.config.architecture = 'llama'; }, /config\.architecture must be one of/],
  ])('refuses %s, naming the field', (_what, edit, message) => {
    const err = (() => {
      try {
        decodeManifest(tampered(edit), 'hostile.msgpack');
      } catch (x) {
        return x;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(ManifestError);
    expect((err as Error).message).toMatch(/^hostile\.msgpack: /);
    expect((err as Error).message).toMatch(message);
  });

  it('refuses a tiny manifest claiming 1e8 layers fast, without building its tables', () => {
    const t0 = performance.now();
    const before = process.memoryUsage().heapUsed;
    expect(() => decodeManifest(tampered((e) => void (e.config.numLayers = 1e8)), 'big')).toThrow(/config\.numLayers must be an integer in \[1, 1024\], got 100000000/);
    expect(() => decodeManifest(tampered((e) => void (e.config.moe.numExperts = 4096)), 'wide')).toThrow(/expert shards .* only \d+ are hashed|topK|nGroup|numExperts/);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(64 * 2 ** 20);
  });

  it('inspect and verify name the bad field and exit 1', async () => {
    const dir = join(work, 'bad-offset');
    mkdirSync(join(dir, 'shards'), { recursive: true });
    writeFileSync(join(dir, MODEL_FILES.manifest), tampered((e) => void (e.config.numLayers = 1e8)));
    const errors: string[] = [];
    const orig = console.error;
    console.error = (...a: unknown[]) => void errors.push(a.join(' '));
    try {
      expect(await main(['inspect', dir])).toBe(1);
      expect(await main(['verify', dir])).toBe(1);
    } finally {
      console.error = orig;
    }
    expect(errors.join('\n')).toMatch(/config\.numLayers/);
  });
});

describe('config bounds before allocating', () => {
  it('a 2 KB config.json claiming 1e8 layers fails fast in convert, naming the field', async () => {
    const src = join(work, 'huge-config');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'config.json'), JSON.stringify({ ...PRESETS['mixtral-tiny']!.config, num_hidden_layers: 1e8 }));
    copyFileSync(join(FIXTURES, 'hf-moe/mixtral-tiny/model.safetensors'), join(src, 'model.safetensors'));
    const t0 = performance.now();
    await expect(convert({ source: src, out: join(work, 'huge-out'), quant: 'q8_0' })).rejects.toThrow(/"num_hidden_layers" is 100000000, more than the 1024/);
    await expect(convert({ source: src, out: join(work, 'huge-out'), quant: 'q8_0' })).rejects.toBeInstanceOf(ConfigError);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('sizes that multiply to an absurd model are refused too', async () => {
    const src = join(work, 'wide-config');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'config.json'), JSON.stringify({ ...PRESETS['mixtral-tiny']!.config, num_hidden_layers: 1000, num_local_experts: 4000, hidden_size: 60000, num_attention_heads: 1000, intermediate_size: 1_000_000 }));
    await expect(convert({ source: src, out: join(work, 'wide-out'), quant: 'q8_0' })).rejects.toThrow(ConfigError);
  });
});

describe('safetensors aliasing', () => {
  it('refuses two tensors whose byte ranges overlap, naming both', async () => {
    const src = join(work, 'alias');
    mkdirSync(src, { recursive: true });
    const data = new Uint8Array(64);
    writeSafetensors(join(src, 'model.safetensors'), { a: { dtype: 'F32', shape: [4], data: data.subarray(0, 16) }, b: { dtype: 'F32', shape: [4], data: data.subarray(0, 16) } });
    // rewrite b's offsets onto a's bytes (same length, so only the overlap is wrong)
    const buf = readFileSync(join(src, 'model.safetensors'));
    const n = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + n).toString()) as Record<string, { data_offsets: number[] }>;
    header.b!.data_offsets = [8, 24];
    const h = Buffer.from(JSON.stringify(header).padEnd(n, ' '));
    buf.set(h, 8);
    writeFileSync(join(src, 'model.safetensors'), buf);
    const { readHeader } = await import('../../../manifests/node.ts');
    await expect(readHeader(join(src, 'model.safetensors'))).rejects.toThrow(/tensors a and b overlap/);
    await expect(readHeader(join(src, 'model.safetensors'))).rejects.toBeInstanceOf(CheckpointError);
  });
});

describe('files that are not regular files', () => {
  it('a FIFO, a directory or a device where a shard should be is refused without blocking', async () => {
    const dir = join(work, 'fifo-model');
    await convert({ source: join(FIXTURES, 'hf-moe/mixtral-tiny'), out: dir, quant: 'q8_0' });
    const { manifest } = await readModelDir(dir);
    const [a, b, c] = manifest.shards.map((s) => s.hash);
    rmSync(join(dir, 'shards', a!));
    execFileSync('mkfifo', [join(dir, 'shards', a!)]);
    rmSync(join(dir, 'shards', b!));
    mkdirSync(join(dir, 'shards', b!));
    rmSync(join(dir, 'shards', c!));
    execFileSync('ln', ['-s', '/dev/zero', join(dir, 'shards', c!)]);
    const r = await verifyModelDir(dir);
    expect(r.ok).toBe(false);
    expect(r.notRegular.map((n) => n.hash).sort()).toEqual([a, b, c].sort());
    expect(r.notRegular.find((n) => n.hash === a)!.reason).toMatch(/FIFO/);
    await expect(readShardFile(dir, a!)).rejects.toThrow(/a FIFO, not a regular file/);
    await expect(readShardFile(dir, c!)).rejects.toThrow(/a device/);
  });

  it('a FIFO manifest or config.json is refused, not waited on', async () => {
    const dir = join(work, 'fifo-manifest');
    mkdirSync(dir, { recursive: true });
    execFileSync('mkfifo', [join(dir, MODEL_FILES.manifest)]);
    await expect(readModelDir(dir)).rejects.toThrow(/FIFO/);
    const src = join(work, 'fifo-config');
    mkdirSync(src, { recursive: true });
    execFileSync('mkfifo', [join(src, 'config.json')]);
    await expect(convert({ source: src, out: join(work, 'fifo-out') })).rejects.toThrow(/config\.json is a FIFO/);
  });
});
