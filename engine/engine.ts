/**
 * The engine: a loaded model that generates. Load uploads the dense weights and sets up the expert
 * provider; `generate` streams tokens as they are chosen and keeps its own telemetry.
 */
import type { Backend, DeviceBytes } from '../kernels/index.ts';
import { ropeOf, type Manifest, type ModelConfig } from '../manifests/index.ts';
import { Prefetcher, type PrefetcherStats, type Routing } from '../router/index.ts';
import type { ShardStore, StoreStats } from '../storage/index.ts';
import { ContextLengthError, EngineError } from './errors.ts';
import { loadAllExperts, type ExpertProvider } from './experts.ts';
import { Transformer, type LayerObserver } from './forward.ts';
import { KvCache } from './kv-cache.ts';
import { createSampler, type Sampler, type SamplingOptions } from './sampling.ts';
import { Sequence } from './sequence.ts';
import type { ModelSource } from './source.ts';
import { TextStream, loadTokenizer, type TextCodec } from './tokenizer.ts';
import type { ChatTemplate } from './chat-template.ts';
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
  /**
   * With a store: the budgets it was opened with. The VRAM budget bounds the experts one step may
   * hold; with no RAM tier, prefetches go straight to VRAM.
   */
  storeBudgets?: { vramBytes: number; ramBytes: number };
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
  /**
   * Run in this sequence's KV cache and keep it afterwards: the prompt's longest prefix already
   * cached is reused, only the rest is prefilled (the stats say how much of each).
   */
  sequence?: Sequence;
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
  /** Prompt tokens run through the model by this call. */
  prefilledTokens: number;
  /** Prompt tokens whose keys and values came from the sequence's cache. */
  reusedTokens: number;
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
  /** The model's own chat template; null when it has none (it can then only continue text). */
  readonly chatTemplate: ChatTemplate | null;
  readonly loadMs: number;
  private readonly backend: Backend;
  private readonly transformer: Transformer;
  private readonly experts: ExpertProvider;
  private readonly store: ShardStore<DeviceBytes> | null;
  private readonly prefetcher: Prefetcher | null;
  private readonly observer: LayerObserver | undefined;

  private constructor(backend: Backend, source: ModelSource, transformer: Transformer, experts: ExpertProvider,
    { codec, chatTemplate }: { codec: TextCodec | null; chatTemplate: ChatTemplate | null }, loadMs: number,
    store: ShardStore<DeviceBytes> | null, prefetcher: Prefetcher | null, observer: LayerObserver | undefined) {
    this.backend = backend;
    this.manifest = source.manifest;
    this.config = source.manifest.config;
    this.modelId = source.id;
    this.transformer = transformer;
    this.experts = experts;
    this.codec = codec;
    this.chatTemplate = chatTemplate;
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
    const { backend, source, store, storeBudgets } = opts;
    // before any weight is fetched: a rope type this build cannot compute is refused by name
    const rope = ropeOf(source.manifest.config);
    if (store && !storeBudgets) throw new EngineError('Engine.load: a store needs the storeBudgets it was opened with');
    const dense = await loadDenseWeights(backend, source);
    const experts = store && storeBudgets
      ? await storedExperts(store, storeBudgets.vramBytes)(backend, source)
      : await loadAllExperts(backend, source);
    const depth = opts.prefetchDepth ?? 1;
    const prefetcher = store && storeBudgets && depth > 0 ? createPrefetcher(source.manifest, dense, store, storeBudgets.ramBytes, depth) : null;
    const { codec, chatTemplate } = await loadTokenizer(source.manifest.tokenizer, (h) => source.shard(h));
    await backend.sync();
    const transformer = new Transformer(backend, source.manifest.config, dense, experts, rope);
    return new Engine(backend, source, transformer, experts, { codec, chatTemplate }, performance.now() - t0, store ?? null, prefetcher, opts.observer);
  }

  /** One throwaway token through every layer, so the backend compiles its pipelines before a request waits on them. */
  async warmup(): Promise<void> {
    const cache = new KvCache(this.backend, this.config, 1);
    try {
      await this.transformer.forward([this.config.bosTokenId ?? 0], cache, false);
    } finally {
      cache.free();
    }
  }

  /** Ids of a prompt through the model's tokenizer. */
  encode(text: string): number[] {
    if (!this.codec) throw new EngineError(`model "${this.manifest.name}" has no tokenizer.json; pass token ids instead of text`);
    return this.codec.encode(text);
  }

  /** Telemetry of a generation that never ran (a turn aborted before it started). */
  idleStats(): GenerationStats {
    return {
      loadMs: this.loadMs, promptTokens: 0, prefilledTokens: 0, reusedTokens: 0, generatedTokens: 0, ttftMs: 0, decodeMs: 0, decodeTokPerS: 0,
      gpuBytes: this.backend.bytesInUse(), expertBytes: this.experts.bytes(), kvCacheBytes: 0, expertWaitMs: 0,
    };
  }

  /** A KV cache that several generations can continue (chat turns); free it when done. */
  createSequence(capacity = this.config.maxPositionEmbeddings): Sequence {
    return new Sequence(this.backend, this.config, Math.min(capacity, this.config.maxPositionEmbeddings));
  }

  generate(promptIds: readonly number[], opts: GenerateOptions): Generation {
    const cfg = this.config;
    if (promptIds.length === 0) throw new EngineError('the prompt is empty');
    if (!Number.isSafeInteger(opts.maxNewTokens) || opts.maxNewTokens < 0) throw new RangeError(`maxNewTokens must be an integer ≥ 0, got ${opts.maxNewTokens}`);
    const seq = opts.sequence;
    const capacity = seq ? seq.capacity : Math.min(this.transformer.maxContext, promptIds.length + opts.maxNewTokens);
    if (promptIds.length > capacity) throw new ContextLengthError(promptIds.length, 0, capacity);
    if (seq?.busy) throw new EngineError('this sequence is already generating; wait for that generation to finish');
    const sample = createSampler(opts);
    const stats: GenerationStats = { ...this.idleStats(), promptTokens: promptIds.length, gpuBytes: 0, expertBytes: 0, kvCacheBytes: KvCache.bytesFor(cfg, capacity) };
    const generation = { stats, prefillLogits: [] as Float32Array[], stepLogits: [] as Float32Array[], prefillRouting: [] as (Routing | null)[] };
    // a sequence of its own is made when iteration starts, so a generation never iterated holds no memory
    const iterable = this.run(promptIds, opts, seq ?? capacity, sample, generation);
    return { [Symbol.asyncIterator]: () => iterable, ...generation };
  }

  private async *run(promptIds: readonly number[], opts: GenerateOptions, sequence: Sequence | number, sample: Sampler,
    g: Omit<Generation, typeof Symbol.asyncIterator>): AsyncGenerator<GeneratedToken> {
    const cfg = this.config;
    const own = typeof sequence === 'number';
    const seq = own ? new Sequence(this.backend, cfg, sequence) : sequence;
    // claimed when iteration starts (a generation never iterated holds nothing)
    if (!own && seq.busy) throw new EngineError('this sequence is already generating; wait for that generation to finish');
    seq.busy = true;
    const { stats } = g;
    const t0 = performance.now();
    this.prefetcher?.reset();
    const text = new TextStream(this.codec);
    try {
      const reused = seq.reuse(promptIds);
      stats.reusedTokens = reused;
      stats.prefilledTokens = promptIds.length - reused;
      let ids: readonly number[] = promptIds.slice(reused);
      let tDecode = 0;
      for (let step = 0; step < opts.maxNewTokens && seq.cache.length + ids.length <= seq.capacity; step++) {
        const first = step === 0;
        const out = await this.transformer.forward(ids, seq.cache, first && opts.keepLogits === true, this.observer);
        seq.committed(ids);
        const vocab = cfg.vocabSize;
        const lastRow = out.rows - 1;
        if (first) {
          g.prefillRouting.push(...out.routing);
          if (opts.keepLogits) for (let r = 0; r < out.rows; r++) g.prefillLogits.push(out.logits.slice(r * vocab, (r + 1) * vocab));
        }
        const id = sample(out.logits, lastRow * vocab, vocab);
        if (opts.keepLogits) g.stepLogits.push(out.logits.slice(lastRow * vocab, (lastRow + 1) * vocab));
        stats.generatedTokens = step + 1;
        const now = performance.now();
        if (first) {
          stats.ttftMs = now - t0;
          tDecode = now;
        } else {
          stats.decodeMs = now - tDecode;
          stats.decodeTokPerS = step / (stats.decodeMs / 1000);
        }
        stats.gpuBytes = this.backend.bytesInUse();
        stats.expertBytes = this.experts.bytes();
        stats.expertWaitMs += out.expertWaitMs;
        if (this.store) stats.storage = this.store.stats();
        if (this.prefetcher) stats.prefetch = this.prefetcher.stats();
        yield { id, text: text.push(id), experts: expertsOf(out.routing, lastRow) };
        if ((opts.stopOnEos ?? true) && cfg.eosTokenIds.includes(id)) break;
        ids = [id];
      }
    } finally {
      if (own) seq.free();
      else seq.busy = false;
    }
  }

  /**
   * Mean next-token negative log-likelihood (nats) over sequences, each scored in one prefill pass,
   * with log-softmax in f64.
   */
  async perplexity(sequences: readonly (readonly number[])[]): Promise<{ nll: number; tokens: number; perplexity: number }> {
    let total = 0;
    let tokens = 0;
    const vocab = this.config.vocabSize;
    const context = this.transformer.maxContext;
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
function createPrefetcher(m: Manifest, dense: DenseWeights, store: ShardStore<DeviceBytes>, ramTier: number, depth: number): Prefetcher {
  const cfg = m.config;
  const shardsOf = new Map(m.experts.map((e) => [`${e.layer}/${e.expert}`, e.shards.map((s) => m.shards[s]!.hash)]));
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
