/** A manifest that cannot be decoded or is inconsistent; `source` names where its bytes came from. */
export class ManifestError extends Error {
  override name = 'ManifestError';
}

/** A Hugging Face checkpoint we cannot read: bad safetensors header, missing tensor, wrong shape or dtype. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** A config.json that does not describe a supported architecture or lacks a field the forward pass needs. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Shard bytes that do not hash to their name, or a shard that is missing. */
export class ShardIntegrityError extends Error {
  override name = 'ShardIntegrityError';
}

/** Writing a model directory failed (I/O); nothing previously complete was replaced. */
export class ConvertError extends Error {
  override name = 'ConvertError';
}
