/**
 * The compute surface the engine runs on. Two implementations share it: the WebGPU backend (WGSL
 * kernels) and the CPU reference backend (plain TypeScript), which is the reference each kernel
 * is tested against. Ops are queued in call order; nothing is observable until `read`.
 *
 * Shapes: an Act is a row-major f32 matrix [rows, cols]. A Weight is a matrix [rows, cols] =
 * [out_features, in_features] in one of the RDRR weight layouts (manifests/types.ts), living
 * inside a DeviceBytes region (usually one shard uploaded whole).
 */
import type { WeightDtype } from '../manifests/index.ts';

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

export interface Backend {
  readonly name: string;
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
  /** Per row, the column of its largest value (the first on ties; NaN never wins). Resolves after queued work. */
  argmax(x: Act): Promise<Uint32Array>;
  /** Per-row: true when every value of every row is finite. Resolves after queued work. */
  finiteRows(x: Act): Promise<boolean[]>;
  /** Wait for queued work (for timing). */
  sync(): Promise<void>;
}
