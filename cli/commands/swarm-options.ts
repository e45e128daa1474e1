import { intFlag, numFlag, numberOption, UsageError } from '../command.ts';
import type { NodePeerOptions } from '../../swarm/node.ts';
import { multiaddr } from '@multiformats/multiaddr';

/** Options shared by `doppler seed`, `join` and `fetch`. */
export const swarmOptions = {
  signal: { type: 'string', multiple: true },
  replication: intFlag(1, 64),
  'upload-mib-s': numFlag(0.001),
  'heartbeat-ms': intFlag(50, 3_600_000),
  'discovery-ms': intFlag(50, 3_600_000),
  listen: { type: 'string', multiple: true },
  verbose: { type: 'boolean' },
} as const;

export const SWARM_HELP = `  --signal MULTIADDR    signaling server (as printed by \`doppler signal\`); repeatable, required
  --replication R       copies of every shard storage peers keep (default 3)
  --upload-mib-s N      cap this peer's upload rate (MiB/s; default: none)
  --heartbeat-ms N      shard-map exchange period; 3 missed drop a peer (default 2000)
  --discovery-ms N      re-register with the signaling server this often (default 5000)
  --listen MULTIADDR    listen address (repeatable; default TCP and WS on 127.0.0.1, any port)
  --verbose             log swarm events to stderr`;

interface SwarmValues {
  signal?: string[];
  replication?: string;
  'upload-mib-s'?: string;
  'heartbeat-ms'?: string;
  'discovery-ms'?: string;
  listen?: string[];
  verbose?: boolean;
}

/** The peer options these flags give; --signal is required. */
export function peerOptionsFrom(v: SwarmValues): Omit<NodePeerOptions, 'dir'> {
  if (!v.signal || v.signal.length === 0) throw new UsageError('--signal is required');
  for (const s of v.signal) checkSignalAddr(s);
  const upload = numberOption(v['upload-mib-s'], '--upload-mib-s');
  const r = numberOption(v.replication, '--replication');
  const hb = numberOption(v['heartbeat-ms'], '--heartbeat-ms');
  const disc = numberOption(v['discovery-ms'], '--discovery-ms');
  if (r !== undefined && (!Number.isInteger(r) || r < 1)) throw new UsageError('--replication expects an integer ≥ 1');
  return {
    signal: v.signal,
    ...(r !== undefined ? { replication: r } : {}),
    ...(upload !== undefined ? { uploadBytesPerSec: upload * 2 ** 20 } : {}),
    ...(hb !== undefined ? { heartbeatMs: hb } : {}),
    ...(disc !== undefined ? { discoveryMs: disc } : {}),
    ...(v.listen ? { listen: v.listen } : {}),
    ...(v.verbose ? { log: (line: string) => process.stderr.write(`${line}\n`) } : {}),
  };
}

/** A signaling server address must be a multiaddr ending in /p2p/<peer id>, as `doppler signal` prints. */
export function checkSignalAddr(s: string): void {
  let ok: boolean;
  try {
    ok = multiaddr(s).getComponents().some((c) => c.name === 'p2p');
  } catch {
    throw new UsageError(`--signal "${s}" is not a multiaddr (expected something like /ip4/127.0.0.1/tcp/9090/ws/p2p/12D3Koo…, as \`doppler signal\` prints)`);
  }
  if (!ok) throw new UsageError(`--signal "${s}" has no /p2p/<peer id> part (use the address \`doppler signal\` prints)`);
}

/** Resolves on SIGINT or SIGTERM (long-running commands stop cleanly on either). */
export function untilInterrupted(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}
