/**
 * A chat session: messages in, the model's own chat template rendered, tokens streamed out. One
 * KV cache lives across turns, so a turn prefills only what its rendered prompt adds to what the
 * cache holds. Turns run one at a time, in call order.
 */
import { NoChatTemplateError, type ChatMessage } from './chat-template.ts';
import type { Engine, GenerationStats } from './engine.ts';
import { ContextLengthError, EngineError } from './errors.ts';
import type { SamplingOptions } from './sampling.ts';
import type { Sequence } from './sequence.ts';
import { StopMatcher } from './stop.ts';

export interface ChatOptions extends SamplingOptions {
  /** Most tokens to generate (default: whatever the context has left). */
  maxTokens?: number;
  /** Generation ends before the first of these strings; it is not part of the reply. */
  stop?: string | readonly string[];
  /** Aborting ends the reply at once (finish reason 'abort'); the session stays usable. */
  signal?: AbortSignal;
}

export type FinishReason = 'stop' | 'length' | 'abort';

/** What one generated token added: text may be empty while it could still begin a stop string. */
export interface ChatDelta {
  text: string;
  id: number;
}

export interface ChatUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

export interface ChatResult {
  text: string;
  ids: number[];
  finishReason: FinishReason;
  usage: ChatUsage;
  /** The engine's telemetry, with `prefilledTokens` and `reusedTokens` for this turn. */
  stats: GenerationStats;
}

/** A reply as it is generated: iterate it for deltas, or await `result`. */
export interface ChatReply extends AsyncIterable<ChatDelta> {
  readonly promptTokens: number;
  readonly result: Promise<ChatResult>;
}

export interface ChatSessionOptions {
  /** Positions of the session's KV cache (default: the model's context, at most 4096). */
  contextTokens?: number;
}

/**
 * @example
 * const session = new ChatSession(engine);
 * const reply = session.chat([{ role: 'user', content: 'Hello' }], { maxTokens: 32 });
 * for await (const d of reply) process.stdout.write(d.text);
 * console.log((await reply.result).stats.reusedTokens);
 */
export class ChatSession {
  readonly engine: Engine;
  private readonly sequence: Sequence;
  /** Settles when the latest turn has finished with the cache. */
  private tail: Promise<void> = Promise.resolve();

  constructor(engine: Engine, opts: ChatSessionOptions = {}) {
    this.engine = engine;
    this.sequence = engine.createSequence(opts.contextTokens ?? Math.min(4096, engine.config.maxPositionEmbeddings));
  }

  get contextTokens(): number {
    return this.sequence.capacity;
  }

  /** The prompt text the model's chat template makes of these messages (ending in the assistant's turn). */
  render(messages: readonly ChatMessage[]): string {
    const t = this.engine.chatTemplate;
    if (!t) throw new NoChatTemplateError(`model "${this.engine.manifest.name}" has no chat template (chat_template.jinja or tokenizer_config.json's chat_template); use plain completion`);
    return t.render(messages, true);
  }

  /** Answers the conversation; throws at once (before any generation) on bad messages or a prompt that does not fit. */
  chat(messages: readonly ChatMessage[], opts: ChatOptions = {}): ChatReply {
    return this.turn(this.engine.encode(this.render(messages)), opts);
  }

  /** Continues a text (or token ids) with no template. */
  complete(prompt: string | readonly number[], opts: ChatOptions = {}): ChatReply {
    return this.turn(typeof prompt === 'string' ? this.engine.encode(prompt) : prompt, opts);
  }

  /** Forgets the cached conversation (the next turn prefills everything). */
  async reset(): Promise<void> {
    await this.tail;
    this.sequence.truncate(0);
  }

  async close(): Promise<void> {
    await this.tail;
    this.sequence.free();
  }

  private turn(ids: readonly number[], opts: ChatOptions): ChatReply {
    if (ids.length === 0) throw new EngineError('the prompt is empty');
    const room = this.contextTokens - ids.length;
    // without a limit, a reply may fill what the context has left (at least one token)
    const maxTokens = opts.maxTokens ?? Math.max(1, room);
    if (!(Number.isInteger(maxTokens) && maxTokens >= 1)) throw new RangeError(`maxTokens must be a positive integer, got ${maxTokens}`);
    if (maxTokens > room) throw new ContextLengthError(ids.length, maxTokens, this.contextTokens);
    const stops = opts.stop === undefined ? [] : typeof opts.stop === 'string' ? [opts.stop] : [...opts.stop];
    const stopper = new StopMatcher(stops);
    const feed = new DeltaFeed();
    const previous = this.tail;
    const run = this.drive(previous, ids, maxTokens, opts, stopper, feed);
    this.tail = run.then(() => undefined, () => undefined);
    return { promptTokens: ids.length, result: feed.result, [Symbol.asyncIterator]: () => feed.iterator() };
  }

  private async drive(previous: Promise<void>, ids: readonly number[], maxTokens: number, opts: ChatOptions, stopper: StopMatcher, feed: DeltaFeed): Promise<void> {
    const { signal } = opts;
    const out: number[] = [];
    let text = '';
    let stats: GenerationStats = this.engine.idleStats();
    const finish = (reason: FinishReason) => feed.finish({
      text, ids: [...out], finishReason: reason,
      usage: { promptTokens: ids.length, completionTokens: out.length, totalTokens: ids.length + out.length },
      stats,
    });
    const onAbort = () => finish('abort');
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await previous;
      if (signal?.aborted) return finish('abort');
      const gen = this.engine.generate(ids, { maxNewTokens: maxTokens, sequence: this.sequence, ...sampling(opts) });
      stats = gen.stats;
      const eos = this.engine.config.eosTokenIds;
      for await (const t of gen) {
        out.push(t.id);
        if (signal?.aborted) return finish('abort');
        // the end-of-sequence token ends the turn; its text is not part of the reply
        const step = eos.includes(t.id) ? { text: stopper.flush(), stopped: true } : stopper.push(t.text);
        text += step.text;
        feed.push({ text: step.text, id: t.id });
        if (step.stopped) return finish('stop');
        await yieldToEventLoop();
      }
      const rest = stopper.flush();
      text += rest;
      if (rest) feed.push({ text: rest, id: out.at(-1)! });
      finish('length');
    } catch (err) {
      feed.fail(err);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

/**
 * On the CPU backend a whole generation can run on microtasks alone, starving I/O: a server would
 * neither send the streamed tokens nor notice a client leaving until the end. One macrotask turn
 * per token lets both happen.
 */
function yieldToEventLoop(): Promise<void> {
  const g = globalThis as { setImmediate?: (f: () => void) => unknown; scheduler?: { yield?: () => Promise<void> } };
  if (typeof g.setImmediate === 'function') return new Promise((resolve) => g.setImmediate!(resolve));
  if (typeof g.scheduler?.yield === 'function') return g.scheduler.yield();
  // browsers clamp nested setTimeout(0) to 4 ms; a message is a macrotask without the clamp
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

function sampling(o: SamplingOptions): SamplingOptions {
  return { ...(o.temperature !== undefined ? { temperature: o.temperature } : {}), ...(o.topP !== undefined ? { topP: o.topP } : {}), ...(o.seed !== undefined ? { seed: o.seed } : {}) };
}

/**
 * Deltas from the generating turn to whoever reads them. Once finished (or aborted), readers see
 * the end at once, even while the engine completes the step it was in.
 */
class DeltaFeed {
  readonly result: Promise<ChatResult>;
  private readonly items: ChatDelta[] = [];
  private done = false;
  private error: unknown = null;
  private wake: (() => void) | null = null;
  private settle!: (r: ChatResult) => void;
  private reject!: (e: unknown) => void;

  constructor() {
    this.result = new Promise((resolve, reject) => {
      this.settle = resolve;
      this.reject = reject;
    });
    // a caller that only iterates still sees the error there; this keeps it from being "unhandled"
    this.result.catch(() => undefined);
  }

  push(d: ChatDelta): void {
    if (this.done) return;
    this.items.push(d);
    this.notify();
  }

  finish(r: ChatResult): void {
    if (this.done) return;
    this.done = true;
    this.settle(r);
    this.notify();
  }

  fail(err: unknown): void {
    if (this.done) return;
    this.done = true;
    this.error = err ?? new EngineError('generation failed');
    this.reject(this.error);
    this.notify();
  }

  async *iterator(): AsyncGenerator<ChatDelta> {
    for (let i = 0; ; ) {
      if (i < this.items.length) {
        yield this.items[i++]!;
        continue;
      }
      if (this.done) {
        if (this.error !== null) throw this.error;
        return;
      }
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }
}
