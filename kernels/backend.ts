/**
 * The compute surface the engine runs on. Two implementations share it: the WebGPU backend (WGSL
 * kernels) and the CPU reference backend (plain TypeScript), which is the reference each kernel
 * is tested against. Ops are queued in call order; nothing is observable until `read`.
 *
 * Shapes: an Act is a row-major f32 matrix [rows, cols]. A Weight is a matrix [rows, cols] =
 * [out_features, in_features] in one of the RDRR weight layouts (manifests/types.ts), living
 * inside a DeviceBytes region (usually one shard uploaded whole).
 */
import type { MoeConfig, WeightDtype } from '../manifests/index.ts';

export interface DeviceBytes {
  readonly byteLength: number;
}

export interface Weight {
  readonly src: DeviceBytes;
  readonly byteOffset: number;
  readonly dtype: WeightDtype;
  readonly rows: number;
  readonly cols: number;
}

export interface Act {
  readonly rows: number;
  readonly cols: number;
}

export interface RopeParams {
  /** Number of heads in each row, each `headStride` floats apart, starting at column 0. */
  heads: number;
  headStride: number;
  /** Rotate columns [ropeOffset, ropeOffset + ropeDim) of every head; the rest is untouched. */
  ropeOffset: number;
  ropeDim: number;
  /** Row i has position startPos + i. */
  startPos: number;
  theta: number;
  /** true: pairs (2j, 2j+1) (DeepSeek rope_interleave); false: pairs (j, j + ropeDim/2) (Llama/Mixtral). */
  interleaved: boolean;
  /** Per-pair inverse frequencies (ropeDim / 2 of them), replacing theta^(-2j/ropeDim): YaRN and other scaled RoPE. */
  invFreq?: Float32Array;
  /** Multiplies cos and sin (YaRN's attention factor); default 1. */
  scaling?: number;
}

export interface AttentionParams {
  heads: number;
  kvHeads: number;
  /** q/k head width and v head width. */
  dk: number;
  dv: number;
  /** Query row i sits at position startPos + i and sees positions 0..startPos+i (causal). */
  startPos: number;
  scale: number;
  /**
   * Sliding window: query position p sees only positions p - window + 1 .. p (itself and the
   * window - 1 before it, as transformers masks `kv_idx > q_idx - sliding_window`). Absent: all.
   */
  window?: number;
  /**
   * The caches are ring buffers: position t sits in row t % cacheRows. At least window - 1 + M
   * rows, so no row a query needs was overwritten by this call's keys. Absent: row t.
   */
  cacheRows?: number;
  /** Column in the v cache where kv head 0's values begin (MLA reads values from the latent part of the k cache). */
  vColOffset?: number;
  /**
   * Attention sinks (gpt-oss): an f32 vector [1, heads] of logits, one per query head, that join
   * each softmax denominator unscaled and attend to nothing: p_t = e^(s_t) / (Σ e^(s_u) + e^(sink)).
   */
  sinks?: Weight;
}

/** The router fields of a model's MoE config (router/routing.ts defines the arithmetic). */
export type RouteParams = Pick<MoeConfig, 'router' | 'numExperts' | 'topK' | 'normTopkProb' | 'nGroup' | 'topkGroup' | 'routedScalingFactor'>;

/**
 * Weight formats `Backend.routedExperts` can pick slots of: the GPU patches each slot's offsets
 * (and, for block formats, its scales' offset), so a format with other parts must be added here
 * and in that patch before its experts may be selected on the device.
 */
export const ROUTED_EXPERT_DTYPES: readonly WeightDtype[] = ['f32', 'f16', 'q8_0', 'q4_0'];

/** The most experts a layer may have for `Backend.route` (the WGSL kernel keeps a token's scores in registers). */
export const ROUTE_MAX_EXPERTS = 512;

/**
 * Deterministic work counts since the backend was created (noise-free, unlike timings): what a
 * CI ratchet compares. The CPU backend counts the same events in its own terms (see each field).
 */
export interface BackendCounters {
  /** Kernel launches recorded (CPU backend: one per op call). */
  dispatches: number;
  /** Device→host read-backs: read, argmax, finiteRows (CPU backend: the same calls). */
  readBacks: number;
  /** Host→device bytes: uploads, act writes and per-op data such as uniforms and token ids (CPU backend: uploads and writes). */
  uploadedBytes: number;
  /** Command buffers submitted (CPU backend: waits on queued work — reads and syncs after an op). */
  submits: number;
}

export function zeroCounters(): BackendCounters {
  return { dispatches: 0, readBacks: 0, uploadedBytes: 0, submits: 0 };
}

/** a + scale·b, field by field (b − a is `combineCounters(b, a, -1)`). */
export function combineCounters(a: BackendCounters, b: BackendCounters, scale = 1): BackendCounters {
  return {
    dispatches: a.dispatches + scale * b.dispatches,
    readBacks: a.readBacks + scale * b.readBacks,
    uploadedBytes: a.uploadedBytes + scale * b.uploadedBytes,
    submits: a.submits + scale * b.submits,
  };
}

/**
 * A layer's routed experts in pooled slabs: `gate[e]`, `up[e]` and `down[e]` are expert e's
 * matrices; all slots of one kind share one DeviceBytes, `stride` bytes apart, so a kernel can
 * pick an expert's weights by its id on the device.
 */
export interface ExpertSlabs {
  gate: readonly Weight[];
  up: readonly Weight[];
  down: readonly Weight[];
}

export interface Backend {
  readonly name: string;
  /** A snapshot of the work counters (cumulative). */
  counters(): BackendCounters;
  /** Upload raw bytes (a shard); the length is padded to 4 bytes internally. */
  upload(bytes: Uint8Array): DeviceBytes;
  releaseBytes(b: DeviceBytes): void;
  weight(src: DeviceBytes, byteOffset: number, dtype: WeightDtype, rows: number, cols: number): Weight;

  /**
   * A new activation, zero-filled unless `zeroed` is false: then its contents are unspecified
   * (the reference backend fills it with NaN, so reading it before writing shows up), which spares
   * a GPU fill for outputs that ops overwrite whole.
   */
  act(rows: number, cols: number, zeroed?: boolean): Act;
  /** The same storage seen as another shape (rows * cols must match). */
  view(a: Act, rows: number, cols: number): Act;
  freeAct(a: Act): void;
  write(a: Act, data: Float32Array, rowOffset?: number): void;
  read(a: Act): Promise<Float32Array>;
  /** Several activations in one read-back (one submission, one wait). */
  readMany(acts: readonly Act[]): Promise<Float32Array[]>;
  /** Bytes of device memory this backend holds now. */
  bytesInUse(): number;

  /** out[i, :] = row ids[i] of table (dequantized). */
  embed(ids: Uint32Array, table: Weight, out: Act): void;
  /** out[M, N] = x[M, K] · w[N, K]ᵀ. With accumulate, out += instead of =. */
  matmul(x: Act, w: Weight, out: Act, accumulate?: boolean): void;
  /**
   * Per-head matmul: for h < heads, out[:, h*N:(h+1)*N] = x[:, h*K:(h+1)*K] · w[h*N:(h+1)*N, :]ᵀ
   * where w has rows = heads * N, cols = K.
   */
  matmulHeads(x: Act, w: Weight, out: Act, heads: number): void;
  /** RMSNorm over each row of x viewed as [rows * cols / w.cols, w.cols]; w is an f32 vector (rows = 1). */
  rmsnorm(x: Act, w: Weight, out: Act, eps: number): void;
  /** In place. */
  rope(x: Act, p: RopeParams): void;
  /** out = silu(gate) * up, elementwise. */
  swiglu(gate: Act, up: Act, out: Act): void;
  /**
   * gpt-oss's clamped SwiGLU, elementwise: g = min(gate, limit), u = clamp(up, -limit, limit),
   * out = (u + 1) · g · sigmoid(alpha · g).
   */
  swigluClamped(gate: Act, up: Act, out: Act, alpha: number, limit: number): void;
  /** out[r, :] = x[r, :] + bias, bias an f32 vector (rows = 1, cols = x.cols); out may alias x. */
  addBias(x: Act, bias: Weight, out: Act): void;
  /** out = a + b, elementwise (out may alias a). */
  add(a: Act, b: Act, out: Act): void;
  /** dst[dstRow + i, dstCol + j] = src[srcRow + i, srcCol + j] for i < rows, j < cols. */
  copy(src: Act, srcRow: number, srcCol: number, dst: Act, dstRow: number, dstCol: number, rows: number, cols: number): void;
  /** out[i, :] = x[rows[i], :]. */
  gather(x: Act, rows: Uint32Array, out: Act): void;
  /** out[rows[i], :] += scale[i] * y[i, :]. Rows are distinct within one call. */
  scatterAdd(y: Act, rows: Uint32Array, scale: Float32Array, out: Act): void;
  /**
   * Causal attention of q [M, heads*dk] against caches k [T, kvHeads*dk] and v [T, *] (rows
   * 0..startPos+M-1 valid), writing out [M, heads*dv]. Query head h uses kv head
   * floor(h / (heads / kvHeads)). Softmax is max-subtracted and accumulated in f32.
   */
  attention(q: Act, k: Act, v: Act, out: Act, p: AttentionParams): void;
  /**
   * Routes each row of router logits [tokens, E] exactly as router/ does (router/routing.ts): out
   * [tokens, 2k] receives the row's k expert ids (as f32 values, best first, lower id first among
   * equals) in columns 0..k-1 and their weights in columns k..2k-1. `bias` is DeepSeek-V3's
   * e_score_correction_bias (f32, [1, E]) for sigmoid_group_limited, null otherwise; topk_softmax
   * (gpt-oss) is refused, it is routed on the CPU. A row with a
   * non-finite logit gets ids still in 0..E-1 (the reference backend: NaN weights), so callers
   * must check the logits' finiteness (`finiteTo`) before trusting a row.
   */
  route(logits: Act, p: RouteParams, bias: Weight | null, out: Act): void;
  /**
   * The routed experts of one token, chosen on the device: for j < k (in ascending expert id, the
   * order the engine's CPU-routed path adds them), out += routing[0, k + j] ·
   * down(silu(gate(x)) ⊙ up(x)) with expert routing[0, j]'s slab slots. x is [1, hidden], routing
   * is `route`'s output [1, 2k]; ids outside the slabs are clamped to the last slot. Without
   * `accumulate`, out's prior contents are ignored (as if zero), so it need not be zero-filled.
   */
  routedExperts(x: Act, routing: Act, slabs: ExpertSlabs, out: Act, accumulate?: boolean): void;
  /** out[r, col] = the column of row r of x's largest value (as `argmax`), as an f32 value; nothing is read back. */
  argmaxTo(x: Act, out: Act, col: number): void;
  /** out[r, col] = 1 when every value of row r of x is finite, else 0; nothing is read back. */
  finiteTo(x: Act, out: Act, col: number): void;
  /** Per row, the column of its largest value (the first on ties; NaN never wins). Resolves after queued work. */
  argmax(x: Act): Promise<Uint32Array>;
  /** Per-row: true when every value of every row is finite. Resolves after queued work. */
  finiteRows(x: Act): Promise<boolean[]>;
  /** Wait for queued work (for timing). */
  sync(): Promise<void>;
}
