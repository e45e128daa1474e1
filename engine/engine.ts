/**
 * The engine: a loaded model that generates. Load uploads the dense weights and sets up the expert
 * provider; `generate` streams tokens as they are chosen and keeps its own telemetry.
 */
import type { Backend, DeviceBytes } from '../kernels/index.ts';
import { ropeOf, type Manifest, type ModelConfig } from '../manifests/index.ts';
import { Prefetcher, type PrefetcherStats, type Routing } from '../router/index.ts';
import type { ShardStore, StoreStats } from '../storage/index.ts';
import { EngineError } from './errors.ts';
import { loadAllExperts, type ExpertProvider } from './experts.ts';
import { Transformer, type LayerObserver } from './forward.ts';
import { KvCache } from './kv-cache.ts';
import { createSampler, type SamplingOptions } from './sampling.ts';
import type { ModelSource } from './source.ts';
import { createTextCodec, type TextCodec } from './tokenizer.ts';
import { storedExperts } from './stored-experts.ts';
import { loadDenseWeights, type DenseWeights } from './weights.ts';

export interface EngineOptions {
  backend: Backend;
  source: ModelSource;
  /**
   * Page routed experts through this store (its VRAM tier, built on `backend`, is the expert
   * budget) instead of uploading them all at load. Dense weights stay resident either way.
   */
  store?: ShardStore<DeviceBytes>;
  /** With a store: predict and prefetch the experts of the next `depth` MoE layers (default 1; 0: off). */
  prefetchDepth?: number;
  /** Also sees every MoE layer's routing as it happens (traces, studies of routing). */
  observer?: LayerObserver;
}

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Stop at the model's EOS ids (default true). */
  stopOnEos?: boolean;
  /** Keep the logits that chose each token (and every prefill position's) on the Generation. */
  keepLogits?: boolean;
}

export interface GeneratedToken {
  id: number;
  /** Newly decodable text after this token (empty while a multi-byte character is incomplete); '' without a tokenizer. */
  text: string;
  /** Per MoE layer, the experts this token used (empty arrays for dense layers). */
  experts: number[][];
}

export interface GenerationStats {
  loadMs: number;
  promptTokens: number;
  generatedTokens: number;
  ttftMs: number;
  decodeMs: number;
  /** Tokens after the first, per second of decode time. */
  decodeTokPerS: number;
  gpuBytes: number;
  expertBytes: number;
  kvCacheBytes: number;
  /** Milliseconds the forward passes of this call spent waiting for experts. */
  expertWaitMs: number;
  storage?: StoreStats;
  prefetch?: PrefetcherStats;
}

/** A running or finished generation: iterate it for tokens; stats and logits fill in as it goes. */
export interface Generation extends AsyncIterable<GeneratedToken> {
  readonly stats: GenerationStats;
  /** [promptTokens, vocab] with keepLogits, else empty. */
  readonly prefillLogits: Float32Array[];
  /** The logits each generated token was chosen from, with keepLogits. */
  readonly stepLogits: Float32Array[];
  /** Per MoE layer, the prompt's routing (null for dense layers). */
  readonly prefillRouting: (Routing | null)[];
}

function expertsOf(routing: (Routing | null)[], row: number): number[][] {
  return routing.map((r) => (r ? Array.from(r.experts.subarray(row * r.k, (row + 1) * r.k)) : []));
}

export class Engine {
  readonly manifest: Manifest;
  readonly config: ModelConfig;
  readonly modelId: string;
  readonly codec: TextCodec | null;
  readonly loadMs: number;
  private readonly backend: Backend;
  private readonly transformer: Transformer;
  private readonly experts: ExpertProvider;
  private readonly store: ShardStore<DeviceBytes> | null;
  private readonly prefetcher: Prefetcher | null;
  private readonly observer: LayerObserver | undefined;

  private constructor(backend: Backend, source: ModelSource, transformer: Transformer, experts: ExpertProvider, codec: TextCodec | null, loadMs: number,
    store: ShardStore<DeviceBytes> | null, prefetcher: Prefetcher | null, observer: LayerObserver | undefined) {
    this.backend = backend;
    this.manifest = source.manifest;
    this.config = source.manifest.config;
    this.modelId = source.id;
    this.transformer = transformer;
    this.experts = experts;
    this.codec = codec;
    this.loadMs = loadMs;
    this.store = store;
    this.prefetcher = prefetcher;
    const observers = [prefetcher, observer].filter((o): o is LayerObserver => o !== null && o !== undefined);
    this.observer = observers.length < 2 ? observers[0] : {
      routed: async (layer, routing, hidden) => {
        let read: Promise<Float32Array> | undefined;
        const once = () => (read ??= hidden());
        for (const o of observers) await o.routed(layer, routing, once);
      },
    };
  }

  static async load(opts: EngineOptions): Promise<Engine> {
    const t0 = performance.now();
    const { backend, source, store } = opts;
    // before any weight is fetched: a rope type this build cannot compute is refused by name
    const rope = ropeOf(source.manifest.config);
    const dense = await loadDenseWeights(backend, source);
    const experts = store
      ? await storedExperts(store, store.stats().vram?.budgetBytes ?? 0)(backend, source)
      : await loadAllExperts(backend, source);
    const depth = opts.prefetchDepth ?? 1;
    const prefetcher = store && depth > 0 ? createPrefetcher(source.manifest, dense, store, depth) : null;
    const tok = source.manifest.tokenizer;
    const codec = tok['tokenizer.json']
      ? createTextCodec(await source.shard(tok['tokenizer.json']), tok['tokenizer_config.json'] ? await source.shard(tok['tokenizer_config.json']) : undefined)
      : null;
    await backend.sync();
    const transformer = new Transformer(backend, source.manifest.config, dense, experts, rope);
    return new Engine(backend, source, transformer, experts, codec, performance.now() - t0, store ?? null, prefetcher, opts.observer);
  }

  /** Ids of a prompt through the model's tokenizer. */
  encode(text: string): number[] {
    if (!this.codec) throw new EngineError(`model "${this.manifest.name}" has no tokenizer.json; pass token ids instead of text`);
    return this.codec.encode(text);
  }

  generate(promptIds: readonly number[], opts: GenerateOptions): Generation {
    const cfg = this.config;
    if (promptIds.length === 0) throw new EngineError('the prompt is empty');
    if (!Number.isSafeInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) throw new RangeError(`maxNewTokens must be an integer ≥ 0, got ${opts.maxNewTokens}`);
    const capacity = Math.min(this.transformer.maxContext, promptIds.length + opts.maxNewTokens);
    if (promptIds.length > capacity) {
      throw new EngineError(`the prompt has ${promptIds.length} tokens; the model's context is ${cfg.maxPositionEmbeddings}`);
    }
    const sample = createSampler(opts);
    const stopOnEos = opts.stopOnEos ?? true;
    const stats: GenerationStats = {
      loadMs: this.loadMs, promptTokens: promptIds.length, generatedTokens: 0, ttftMs: 0, decodeMs: 0, decodeTokPerS: 0,
      gpuBytes: 0, expertBytes: 0, kvCacheBytes: KvCache.bytesFor(cfg, capacity), expertWaitMs: 0,
    };
    const prefillLogits: Float32Array[] = [];
    const stepLogits: Float32Array[] = [];
    const prefillRouting: (Routing | null)[] = [];
    const self = this;

    async function* run(): AsyncGenerator<GeneratedToken> {
      const t0 = performance.now();
      const cache = new KvCache(self.backend, cfg, capacity);
      self.prefetcher?.reset();
      const generated: number[] = [];
      // Decoding restarts after each emitted newline (as transformers' TextStreamer does), so the
      // text of a long generation is not re-decoded from its first token at every step.
      let lineStart = 0;
      let shownText = '';
      const textDelta = () => {
        if (!self.codec) return '';
        const text = self.codec.decode(generated.slice(lineStart));
        // a token that ends inside a multi-byte character decodes to U+FFFD until the rest arrives
        if (text.endsWith('\uFFFD')) return '';
        const delta = text.slice(shownText.length);
        if (text.endsWith('\n')) {
          lineStart = generated.length;
          shownText = '';
        } else {
          shownText = text;
        }
        return delta;
      };
      try {
        let ids: readonly number[] = promptIds;
        let tDecode = 0;
        for (let step = 0; step < opts.maxNewTokens && cache.length + ids.length <= capacity; step++) {
          const first = step === 0;
          const out = await self.transformer.forward(ids, cache, first && opts.keepLogits === true, self.observer);
          const vocab = cfg.vocabSize;
          const lastRow = out.rows - 1;
          if (first) {
            prefillRouting.push(...out.routing);
            if (opts.keepLogits) for (let r = 0; r < out.rows; r++) prefillLogits.push(out.logits.slice(r * vocab, (r + 1) * vocab));
          }
          const id = sample(out.logits, lastRow * vocab, vocab);
          if (opts.keepLogits) stepLogits.push(out.logits.slice(lastRow * vocab, (lastRow + 1) * vocab));
          generated.push(id);
          stats.generatedTokens = generated.length;
          const now = performance.now();
          if (first) {
            stats.ttftMs = now - t0;
            tDecode = now;
          } else {
            stats.decodeMs = now - tDecode;
            stats.decodeTokPerS = (generated.length - 1) / (stats.decodeMs / 1000);
          }
          stats.gpuBytes = self.backend.bytesInUse();
          stats.expertBytes = self.experts.bytes();
          stats.expertWaitMs += out.expertWaitMs;
          if (self.store) stats.storage = self.store.stats();
          if (self.prefetcher) stats.prefetch = self.prefetcher.stats();
          yield { id, text: textDelta(), experts: expertsOf(out.routing, lastRow) };
          if (stopOnEos && cfg.eosTokenIds.includes(id)) break;
          ids = [id];
        }
      } finally {
        cache.free();
      }
    }
    const iterable = run();
    return {
      [Symbol.asyncIterator]: () => iterable,
      stats, prefillLogits, stepLogits, prefillRouting,
    };
  }

  /**
   * Mean next-token negative log-likelihood (nats) over sequences, each scored in one prefill pass,
   * with log-softmax in f64.
   */
  async perplexity(sequences: readonly (readonly number[])[]): Promise<{ nll: number; tokens: number; perplexity: number }> {
    let total = 0;
    let tokens = 0;
    const vocab = this.config.vocabSize;
    const context = this.config.maxPositionEmbeddings;
    sequences.forEach((seq, i) => {
      // scored in one pass of length - 1 positions: the same limit generate puts on a prompt
      if (seq.length - 1 > context) throw new EngineError(`sequence ${i} has ${seq.length} tokens; the model's context is ${context} (+1 for the last target)`);
    });
    for (const seq of sequences) {
      if (seq.length < 2) continue;
      const cache = new KvCache(this.backend, this.config, seq.length - 1);
      try {
        const out = await this.transformer.forward(seq.slice(0, -1), cache, true);
        for (let i = 0; i < seq.length - 1; i++) {
          const base = i * vocab;
          let max = -Infinity;
          for (let v = 0; v < vocab; v++) max = Math.max(max, out.logits[base + v]!);
          let sum = 0;
          for (let v = 0; v < vocab; v++) sum += Math.exp(out.logits[base + v]! - max);
          total += max + Math.log(sum) - out.logits[base + seq[i + 1]!]!;
          tokens++;
        }
      } finally {
        cache.free();
      }
    }
    if (tokens === 0) throw new EngineError('perplexity needs at least one sequence of two or more tokens');
    const nll = total / tokens;
    if (!Number.isFinite(nll)) throw new EngineError(`perplexity is not finite (NLL ${nll} over ${tokens} tokens)`);
    return { nll, tokens, perplexity: Math.exp(nll) };
  }
}

/** The prefetcher sees each MoE layer's router (and the norm before it) on the host. */
function createPrefetcher(m: Manifest, dense: DenseWeights, store: ShardStore<DeviceBytes>, depth: number): Prefetcher {
  const cfg = m.config;
  const shardsOf = new Map(m.experts.map((e) => [`${e.layer}/${e.expert}`, e.shards.map((s) => m.shards[s]!.hash)]));
  const ramTier = store.stats().ram.budgetBytes;
  return new Prefetcher({
    moe: cfg.moe,
    hiddenSize: cfg.hiddenSize,
    numLayers: cfg.numLayers,
    rmsNormEps: cfg.rmsNormEps,
    depth,
    gate: (l) => {
      const moe = dense.layers[l]?.moe;
      return moe ? { weight: moe.routerHost, bias: moe.bias, norm: moe.normHost } : null;
    },
    hashesOf: (l, e) => shardsOf.get(`${l}/${e}`) ?? [],
    target: {
      // the next layer goes straight to VRAM; layers further ahead wait in RAM when there is a RAM tier
      prefetch: (hashes, priority, hint) => store.prefetch(hashes, priority, { device: ramTier === 0 || (hint?.layersAhead ?? 1) <= 1 }),
      cancel: (hashes) => store.cancel(hashes),
    },
  });
}
