import { SwarmProtocolError } from './errors.ts';

/** Peer ↔ peer: shard maps, manifest, shard bytes. One request per stream. */
export const SHARD_PROTOCOL = '/doppler/shard/1';
/** Peer ↔ signaling server: register under a model id and list the model's other peers. */
export const DISCOVERY_PROTOCOL = '/doppler/discovery/1';

/** Largest control message (shard bitfields and peer lists); 64 KiB covers >500k shards. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
/** Largest manifest accepted from a peer (a 671B model's manifest is ~150 KB). */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;
/** Largest single shard-range answer. */
export const MAX_PIECE_BYTES = 256 * 1024 * 1024;
/** Peers listed in one message. */
export const MAX_PEERS_LISTED = 64;
/** Addresses per listed peer, and their length. */
export const MAX_ADDRS = 16;
const MAX_ADDR_CHARS = 512;

export interface PeerAddrs {
  id: string;
  addrs: string[];
}

/** What a peer says about itself in a heartbeat: held shards (bitfield over the shard list) and budget. */
export interface HaveMessage {
  t: 'have';
  model: string;
  bits: Uint8Array;
  budget: number;
  peers: PeerAddrs[];
}

export type ShardRequest =
  | HaveMessage
  | { t: 'manifest'; model: string }
  | { t: 'get'; model: string; hash: string; offset: number; length: number };

export type ShardResponse =
  | HaveMessage
  | { t: 'bytes'; length: number }
  | { t: 'err'; message: string };

export type DiscoveryRequest = { t: 'register'; model: string; addrs: string[] };
export type DiscoveryResponse = { t: 'peers'; peers: PeerAddrs[] } | { t: 'err'; message: string };

function fail(from: string, problem: string): never {
  throw new SwarmProtocolError(`${from}: ${problem}`);
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const HEX64 = /^[0-9a-f]{64}$/;

function str64(v: unknown, from: string, field: string): string {
  if (typeof v !== 'string' || !HEX64.test(v)) fail(from, `${field} is not a 64-digit hex hash`);
  return v;
}

function nat(v: unknown, from: string, field: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) fail(from, `${field} is not an integer in [0, ${max}]`);
  return v;
}

export function parseAddrs(v: unknown, from: string): string[] {
  if (!Array.isArray(v) || v.length > MAX_ADDRS) fail(from, `addrs is not a list of at most ${MAX_ADDRS}`);
  for (const a of v) if (typeof a !== 'string' || a.length > MAX_ADDR_CHARS) fail(from, 'an address is not a short string');
  return v as string[];
}

export function parsePeers(v: unknown, from: string): PeerAddrs[] {
  if (!Array.isArray(v) || v.length > MAX_PEERS_LISTED) fail(from, `peers is not a list of at most ${MAX_PEERS_LISTED}`);
  return v.map((p) => {
    if (!isObj(p) || typeof p.id !== 'string' || p.id.length > 128) fail(from, 'a listed peer has no id');
    return { id: p.id, addrs: parseAddrs(p.addrs, from) };
  });
}

function parseHave(m: Record<string, unknown>, from: string): HaveMessage {
  if (!(m.bits instanceof Uint8Array)) fail(from, 'have.bits is not bytes');
  return { t: 'have', model: str64(m.model, from, 'model'), bits: m.bits, budget: nat(m.budget, from, 'budget'), peers: parsePeers(m.peers, from) };
}

export function parseShardRequest(m: unknown, from: string): ShardRequest {
  if (!isObj(m)) fail(from, 'request is not a map');
  switch (m.t) {
    case 'have':
      return parseHave(m, from);
    case 'manifest':
      return { t: 'manifest', model: str64(m.model, from, 'model') };
    case 'get':
      return {
        t: 'get',
        model: str64(m.model, from, 'model'),
        hash: str64(m.hash, from, 'hash'),
        offset: nat(m.offset, from, 'offset'),
        length: nat(m.length, from, 'length', MAX_PIECE_BYTES),
      };
    default:
      fail(from, `unknown request type ${String(m.t)}`);
  }
}

export function parseShardResponse(m: unknown, from: string): ShardResponse {
  if (!isObj(m)) fail(from, 'response is not a map');
  switch (m.t) {
    case 'have':
      return parseHave(m, from);
    case 'bytes':
      return { t: 'bytes', length: nat(m.length, from, 'length', MAX_PIECE_BYTES) };
    case 'err':
      return { t: 'err', message: String(m.message).slice(0, 500) };
    default:
      fail(from, `unknown response type ${String(m.t)}`);
  }
}

export function parseDiscoveryRequest(m: unknown, from: string): DiscoveryRequest {
  if (!isObj(m) || m.t !== 'register') fail(from, 'expected a register request');
  return { t: 'register', model: str64(m.model, from, 'model'), addrs: parseAddrs(m.addrs, from) };
}

export function parseDiscoveryResponse(m: unknown, from: string): DiscoveryResponse {
  if (!isObj(m)) fail(from, 'response is not a map');
  if (m.t === 'err') return { t: 'err', message: String(m.message).slice(0, 500) };
  if (m.t !== 'peers') fail(from, 'expected a peer list');
  return { t: 'peers', peers: parsePeers(m.peers, from) };
}

/** Bitfield over the model's shard list: bit i set when shard i is held. */
export function bitfieldOf(held: readonly boolean[]): Uint8Array {
  const out = new Uint8Array(Math.ceil(held.length / 8));
  held.forEach((h, i) => {
    if (h) out[i >> 3]! |= 1 << (i & 7);
  });
  return out;
}

export function hasBit(bits: Uint8Array, i: number): boolean {
  return ((bits[i >> 3] ?? 0) & (1 << (i & 7))) !== 0;
}
