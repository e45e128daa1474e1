export class StorageError extends Error {
  override name = 'StorageError';
}

/** A tier cannot hold what must stay resident (pinned shards, the working set, or one shard). */
export class StorageBudgetError extends StorageError {
  override name = 'StorageBudgetError';
}

/** Every source failed or served bad bytes for a shard. `cause` lists each attempt's error. */
export class ShardUnavailableError extends StorageError {
  override name = 'ShardUnavailableError';
}

/** Bytes that do not hash to the shard's name. */
export class ShardVerifyError extends StorageError {
  override name = 'ShardVerifyError';
}

/** A source could not deliver a shard (network, missing file, HTTP status). */
export class SourceError extends StorageError {
  override name = 'SourceError';
}
