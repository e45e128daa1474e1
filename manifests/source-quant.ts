import { ConfigError } from './errors.ts';

/**
 * How a checkpoint's own weights are quantized (`quantization_config` in config.json), as far as
 * convert reads them: FP8 with block scales (DeepSeek-V3's release) or MXFP4 experts (gpt-oss's).
 * Anything else is refused by name: converting it as if it were plain floats would be silently wrong.
 */
export type SourceQuantization =
  | { method: 'fp8'; blockRows: number; blockCols: number }
  | { method: 'mxfp4' }
  | null;

/**
 * @example
 * sourceQuantization({ quantization_config: { quant_method: 'fp8', weight_block_size: [128, 128] } }, 'config.json');
 * // → { method: 'fp8', blockRows: 128, blockCols: 128 }
 */
export function sourceQuantization(raw: unknown, source: string): SourceQuantization {
  const q = (raw as Record<string, unknown> | null)?.['quantization_config'];
  if (q === undefined || q === null) return null;
  const where = `${source}: quantization_config`;
  if (typeof q !== 'object' || Array.isArray(q)) throw new ConfigError(`${where} must be an object`);
  const c = q as Record<string, unknown>;
  const method = c['quant_method'];
  if (method === 'mxfp4') return { method };
  if (method !== 'fp8') throw new ConfigError(`${where}.quant_method ${JSON.stringify(method)} is not supported (fp8 with weight_block_size, mxfp4)`);
  const scheme = c['activation_scheme'] ?? 'dynamic';
  // Static activation scales would have the model quantize its inputs with stored scales; we compute in f32.
  if (scheme !== 'dynamic') throw new ConfigError(`${where}.activation_scheme ${JSON.stringify(scheme)} is not supported (only dynamic)`);
  const fmt = c['fmt'];
  if (fmt !== undefined && fmt !== 'e4m3' && fmt !== 'e5m2') throw new ConfigError(`${where}.fmt ${JSON.stringify(fmt)} is not supported (e4m3, e5m2)`);
  const block = c['weight_block_size'];
  if (!Array.isArray(block) || block.length !== 2 || !block.every((b) => Number.isInteger(b) && b > 0)) {
    throw new ConfigError(`${where}.weight_block_size must be [rows, cols] of positive integers (per-tensor FP8 scales are not supported), got ${JSON.stringify(block)}`);
  }
  return { method, blockRows: block[0] as number, blockCols: block[1] as number };
}

/** One line for the manifest: how the source stored its weights. */
export function describeSourceQuantization(q: SourceQuantization): string | null {
  if (!q) return null;
  return q.method === 'fp8' ? `fp8 block-scaled ${q.blockRows}×${q.blockCols}` : 'mxfp4';
}
