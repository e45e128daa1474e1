/** Failures of the engine, each naming what went wrong where. */
export class EngineError extends Error {
  override name = 'EngineError';
}

/** The model directory or manifest cannot be run (missing tensor, unsupported layout, budget too small). */
export class ModelLoadError extends EngineError {
  override name = 'ModelLoadError';
}

/**
 * A NaN or Inf appeared in the hidden state. Raised before the step that produced it is committed
 * to the KV cache, so the cache stays as it was before the failing call.
 */
export class NonFiniteError extends EngineError {
  override name = 'NonFiniteError';
  readonly layer: number;
  readonly position: number;
  constructor(layer: number, position: number, where: string) {
    super(`non-finite ${where === 'in the logits' ? 'logits' : 'hidden state'} at layer ${layer}, token position ${position} (${where})`);
    this.layer = layer;
    this.position = position;
  }
}
