/**
 * Convert and hashing throughput, and the size of a 671B model's manifest.
 *   node_modules/.bin/node bench/convert.ts [--synthetic-gb N] [--tmp DIR]
 * Writes bench/results/convert.json. Needs `b3sum` on PATH and about 3×N GB free under --tmp.
 */
import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, closeSync, writeSync, rmSync, statfsSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { normaliseConfig, planModel } from '../manifests/index.ts';
import { convert, hashFile, plannedManifestSize, PRESETS, synth } from '../manifests/node.ts';
import { benchArgs, invocation } from './invocation.ts';
import { numFlag } from '../cli/command.ts';

const { values } = benchArgs({ 'synthetic-gb': numFlag(0.001), tmp: { type: 'string' } });
const root = join(import.meta.dirname, '..');
const tmpBase = values.tmp ?? '/tmp';
const work = mkdtempSync(join(tmpBase, 'doppler-bench-convert-'));
const fixture = join(root, '../shared/fixtures/tiny-moe-text');
const results: Record<string, unknown> = {
  command: invocation('convert.ts'),
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, note: '2 cores shared with other work while measuring; times are wall clock' },
};
const mb = (bytes: number, s: number): number => Math.round((bytes / 1e6 / s) * 10) / 10;

try {
  const free = statfsSync(tmpBase);
  const freeGb = (free.bavail * free.bsize) / 1e9;
  const gb = Number(values['synthetic-gb'] ?? Math.min(4, Math.floor(freeGb / 3)));
  console.error(`scratch ${work}: ${freeGb.toFixed(0)} GB free; synthetic checkpoint ≈ ${gb} GB`);

  // 1. The trained fixture (bf16, 3 safetensors files), every quantization.
  const srcBytes = readdirSync(fixture).filter((f) => f.endsWith('.safetensors')).reduce((a, f) => a + statSync(join(fixture, f)).size, 0);
  const tiny: Record<string, unknown> = {}; // single-threaded: the default below 256 MB
  for (const quant of ['f32', 'f16', 'q8_0', 'q4_0'] as const) {
    const out = join(work, `tiny-${quant}`);
    await convert({ source: fixture, out: join(work, 'warm'), quant }); // warm page cache and JIT
    const t0 = performance.now();
    const r = await convert({ source: fixture, out, quant });
    const s = (performance.now() - t0) / 1000;
    tiny[quant] = { seconds: +s.toFixed(3), sourceMBps: mb(srcBytes, s), outputMBps: mb(r.manifest.totals.bytes, s), outputBytes: r.manifest.totals.bytes, shards: r.manifest.shards.length };
  }
  results['tinyMoeText'] = { sourceBytes: srcBytes, byQuant: tiny };
  console.error('tiny-moe-text', JSON.stringify(tiny));

  // 2. A several-GB synthetic Hugging Face checkpoint: mixtral-8x7b shapes with few layers, bf16.
  const layers = Math.max(1, Math.round(gb / 2.9));
  const hf = join(work, 'hf-synthetic');
  const written = writeSyntheticMixtral(hf, layers);
  const big: Record<string, unknown> = {};
  for (const quant of ['q8_0', 'q4_0'] as const) {
    for (const workers of [1, cpus().length]) {
      const out = join(work, `big-${quant}-${workers}`);
      const t0 = performance.now();
      const r = await convert({ source: hf, out, quant, workers });
      const s = (performance.now() - t0) / 1000;
      const key = `${quant}, ${workers} worker${workers > 1 ? 's' : ''}`;
      big[key] = { seconds: +s.toFixed(1), sourceMBps: mb(written, s), outputMBps: mb(r.manifest.totals.bytes, s), outputBytes: r.manifest.totals.bytes, shards: r.manifest.shards.length, id: r.id };
      console.error(`synthetic ${key}`, JSON.stringify(big[key]));
      rmSync(out, { recursive: true, force: true });
    }
  }
  results['syntheticMixtral'] = { shape: `mixtral-8x7b, ${layers} layer(s), bf16, 2 safetensors files + index`, sourceBytes: written, byQuant: big };

  // 3. BLAKE3: hash-wasm (what Doppler uses, in JS) against native b3sum on one thread, same file, same run.
  const file = join(hf, 'model-00001-of-00002.safetensors');
  const size = statSync(file).size;
  execFileSync('b3sum', ['--num-threads', '1', file]); // page cache
  let t0 = performance.now();
  const wasm = await hashFile(file);
  const wasmS = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const native = execFileSync('b3sum', ['--num-threads', '1', '--no-names', file], { encoding: 'utf8' }).trim();
  const nativeS = (performance.now() - t0) / 1000;
  results['blake3'] = {
    bytes: size,
    hashWasm: { seconds: +wasmS.toFixed(2), MBps: mb(size, wasmS) },
    b3sumOneThread: { seconds: +nativeS.toFixed(2), MBps: mb(size, nativeS) },
    digestsAgree: native === wasm.hash,
  };
  console.error('blake3', JSON.stringify(results['blake3']));
  rmSync(hf, { recursive: true, force: true });

  // 4. Manifest-only synth throughput (generate + hash, nothing written), to extrapolate the 671B run.
  t0 = performance.now();
  const ms = await synth({ arch: 'deepseek_v3', preset: 'deepseek-v3-671b', quant: 'q4_0', out: join(work, 'ds-4l'), manifestOnly: true, layers: 4 });
  const msS = (performance.now() - t0) / 1000;
  const full = await plannedManifestSize('deepseek-v3-671b', 'q4_0');
  const perByte = msS / ms.manifest.totals.bytes;

  // 5. The 671B manifest: exact size (hashes are fixed-width, so placeholder hashes give the real size).
  const m671 = full.bytes;
  const hashBytes = full.shards * 32;
  results['deepseekV3_671b_q4_0'] = {
    manifestBytes: m671,
    shards: full.shards,
    routedExperts: full.experts,
    shardHashBytes: hashBytes,
    everythingElseBytes: m671 - hashBytes,
    goalBytes: 150_000,
    manifestOnlySynth: {
      measuredOn: 'deepseek-v3-671b shapes with 4 layers (1 MoE layer: 256 experts), q4_0, default workers',
      bytesHashed: ms.manifest.totals.bytes,
      seconds: +msS.toFixed(1),
      MBps: mb(ms.manifest.totals.bytes, msS),
      extrapolatedFullSeconds: Math.round(perByte * fullBytes()),
      fullBytes: fullBytes(),
    },
  };
  console.error('671B', JSON.stringify(results['deepseekV3_671b_q4_0']));
} finally {
  rmSync(work, { recursive: true, force: true });
}
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(join(root, 'bench/results/convert.json'), JSON.stringify(results, null, 2) + '\n');
console.log(JSON.stringify(results, null, 2));

/** Bytes of every shard of the full deepseek-v3-671b preset at q4_0. */
function fullBytes(): number {
  const plan = planModel(normaliseConfig(PRESETS['deepseek-v3-671b']!.config, 'preset'), 'q4_0', 64 * 1024 * 1024);
  return plan.shards.reduce((a, s) => a + s.size, 0);
}

/** Writes a Mixtral-8x7B-shaped bf16 checkpoint with `layers` layers as two safetensors files + index; returns the bytes written. */
function writeSyntheticMixtral(dir: string, layers: number): number {
  mkdirSync(dir, { recursive: true });
  const H = 4096, I = 14336, V = 32000, KV = 1024, E = 8;
  const config = { model_type: 'mixtral', vocab_size: V, hidden_size: H, intermediate_size: I, num_hidden_layers: layers, num_attention_heads: 32, num_key_value_heads: 8, num_local_experts: E, num_experts_per_tok: 2, rope_theta: 1e6, max_position_embeddings: 32768, rms_norm_eps: 1e-5, tie_word_embeddings: false };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const tensors: [string, number[]][] = [['model.embed_tokens.weight', [V, H]]];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    tensors.push([`${p}.input_layernorm.weight`, [H]], [`${p}.post_attention_layernorm.weight`, [H]],
      [`${p}.self_attn.q_proj.weight`, [H, H]], [`${p}.self_attn.k_proj.weight`, [KV, H]], [`${p}.self_attn.v_proj.weight`, [KV, H]], [`${p}.self_attn.o_proj.weight`, [H, H]],
      [`${p}.block_sparse_moe.gate.weight`, [E, H]]);
    for (let e = 0; e < E; e++) tensors.push([`${p}.block_sparse_moe.experts.${e}.w1.weight`, [I, H]], [`${p}.block_sparse_moe.experts.${e}.w2.weight`, [H, I]], [`${p}.block_sparse_moe.experts.${e}.w3.weight`, [I, H]]);
  }
  tensors.push(['model.norm.weight', [H]], ['lm_head.weight', [V, H]]);
  const half = Math.ceil(tensors.length / 2);
  const files = [tensors.slice(0, half), tensors.slice(half)];
  const weightMap: Record<string, string> = {};
  let total = 0;
  files.forEach((list, fi) => {
    const name = `model-0000${fi + 1}-of-00002.safetensors`;
    const header: Record<string, unknown> = {};
    let off = 0;
    for (const [n, shape] of list) {
      const bytes = shape.reduce((a, b) => a * b, 1) * 2;
      header[n] = { dtype: 'BF16', shape, data_offsets: [off, off + bytes] };
      off += bytes;
      weightMap[n] = name;
    }
    let json = JSON.stringify(header);
    while (json.length % 8) json += ' ';
    const fd = openSync(join(dir, name), 'w');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeSync(fd, len);
    writeSync(fd, json);
    for (const [n, shape] of list) {
      const count = shape.reduce((a, b) => a * b, 1);
      const norm = shape.length === 1;
      const key = createHash('sha256').update(n).digest().subarray(0, 16);
      const aes = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
      const chunk = 1 << 22;
      for (let i = 0; i < count; i += chunk) {
        const c = Math.min(chunk, count - i);
        const buf = norm ? Buffer.alloc(c * 2) : aes.update(Buffer.alloc(c * 2));
        const u = new Uint16Array(buf.buffer, buf.byteOffset, c);
        // bf16 with exponent 120 (|w| in [2^-7, 2^-6)), sign and 7 mantissa bits random; norms = 1.0.
        for (let j = 0; j < c; j++) u[j] = norm ? 0x3f80 : (u[j]! & 0x807f) | 0x3c00;
        writeSync(fd, buf);
      }
      total += count * 2;
    }
    closeSync(fd);
    total += 8 + json.length;
  });
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }));
  return total;
}
