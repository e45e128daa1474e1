/** What the page shows and what tests and the bench read from it (window.doppler). */
import type { SignalingStatus } from '../swarm/index.ts';
import type { TabShards, ShardEvent } from './shards.ts';
import type { EngineName, EngineReport, Phase, TurnResult } from './protocol.ts';

/** One row of /api/models. */
export interface ModelRow {
  id: string;
  name: string;
  architecture: string;
  quant: string;
  parameters: number;
  bytes: number;
  shards: number;
  peers: number;
  seeded: boolean;
}

/** What tests and the bench read (window.doppler). */
export interface PageState {
  modelId: string | null;
  phase: 'idle' | 'manifest' | Phase | 'ready' | 'failed';
  backend: EngineName | null;
  backendNote: string | null;
  /** Which engine runs and why (the worker's report). */
  engine: EngineReport | null;
  loadMs: number | null;
  warm: boolean | null;
  peerId: string | null;
  counters: TabShards['counters'] | null;
  /** The counters when the model became ready: a warm start has networkBytes 0 here. */
  loadCounters: TabShards['counters'] | null;
  /** Shards of the model this tab holds in OPFS, of `totalShards`. */
  heldShards: number;
  totalShards: number;
  /** Bytes this tab keeps in OPFS, and its budget. */
  opfsBytes: number;
  opfsBudget: number;
  banned: string[];
  /** The signaling server's reachability: failed rounds in a row and the backoff before the next. */
  signaling: SignalingStatus | null;
  /** Set while the server is unreachable or shards are awaited with no peer reachable (the tab keeps retrying). */
  swarmStatus: string | null;
  traffic: Record<string, { up: number; down: number }>;
  shardLog: ShardEvent[];
  replies: TurnResult[];
  /** Milliseconds from the start of the load to each step (where a warm start spends its time). */
  marks: Record<string, number>;
  errors: string[];
}
