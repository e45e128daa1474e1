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

/** A prompt (plus the tokens asked for) does not fit the model's or the sequence's context. */
export class ContextLengthError extends EngineError {
  override name = 'ContextLengthError';
  readonly promptTokens: number;
  readonly contextTokens: number;
  constructor(promptTokens: number, requested: number, contextTokens: number) {
    super(requested > 0
      ? `the prompt has ${promptTokens} tokens and ${requested} more were asked for; the context holds ${contextTokens}`
      : `the prompt has ${promptTokens} tokens; the context holds ${contextTokens}`);
    this.promptTokens = promptTokens;
    this.contextTokens = contextTokens;
  }
}
