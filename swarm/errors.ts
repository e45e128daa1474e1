/** A remote peer broke the wire protocol (bad frame, oversize message, wrong answer). */
export class SwarmProtocolError extends Error {
  override name = 'SwarmProtocolError';
}

/** No peer in the swarm could supply a shard (or the manifest) in time. */
export class ShardUnavailableError extends Error {
  override name = 'ShardUnavailableError';
}

/** Bytes a peer served do not hash to the name they were asked for. */
export class SwarmIntegrityError extends Error {
  override name = 'SwarmIntegrityError';
}

/** The swarm peer was used wrongly (bad options, not started, stopped). */
export class SwarmError extends Error {
  override name = 'SwarmError';
}
