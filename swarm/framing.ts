import { Packr } from 'msgpackr';
import type { Stream } from '@libp2p/interface';
import { SwarmProtocolError } from './errors.ts';

/**
 * Wire framing shared by Doppler's protocols: a message is a 4-byte big-endian length followed by that
 * many bytes of msgpack. Bulk bytes (shard pieces) follow their header frame raw, with their length
 * announced in the header, so they are never copied through msgpack.
 */

// Plain msgpack without record extensions: both ends must decode without shared structure state.
const packr = new Packr({ useRecords: false, moreTypes: false });

/** One message as bare msgpack (no length prefix): for carriers that frame it themselves (gossipsub). */
export function encodeMessage(message: unknown): Uint8Array {
  return packr.pack(message);
}

/** Decodes bare msgpack; malformed bytes throw a SwarmProtocolError naming `what`. */
export function decodeMessage(bytes: Uint8Array, what: string): unknown {
  try {
    return packr.unpack(bytes);
  } catch (err) {
    throw new SwarmProtocolError(`${what}: malformed message`, { cause: err });
  }
}

export function encodeFrame(message: unknown): Uint8Array {
  const body = packr.pack(message);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

function flatten(chunk: Uint8Array | { subarray(): Uint8Array }): Uint8Array {
  return chunk instanceof Uint8Array ? chunk : chunk.subarray();
}

/** Pulls exact byte counts and whole frames out of a libp2p stream's async iteration. */
export class FrameReader {
  private readonly it: AsyncIterator<Uint8Array | { subarray(): Uint8Array }>;
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private readonly what: string;
  private readonly onData: (() => void) | undefined;

  /** `onData` runs whenever bytes arrive (a stall watchdog re-arms on it). */
  constructor(stream: AsyncIterable<Uint8Array | { subarray(): Uint8Array }>, what: string, onData?: () => void) {
    this.it = stream[Symbol.asyncIterator]();
    this.what = what;
    this.onData = onData;
  }

  /** True once more data has been read; false at a clean end of stream. */
  private async fill(): Promise<boolean> {
    const r = await this.it.next();
    if (r.done) return false;
    const c = flatten(r.value);
    if (c.length > 0) {
      this.onData?.();
      this.chunks.push(c);
      this.buffered += c.length;
    }
    return true;
  }

  /** Exactly n bytes, copied into `into` at `at` when given (so large pieces land in place). */
  async readExact(n: number, into?: Uint8Array, at = 0): Promise<Uint8Array> {
    const out = into ?? new Uint8Array(n);
    let pos = into ? at : 0;
    let need = n;
    while (need > 0) {
      if (this.buffered === 0 && !(await this.fill())) {
        throw new SwarmProtocolError(`${this.what}: stream ended with ${need} of ${n} bytes missing`);
      }
      while (need > 0 && this.chunks.length > 0) {
        const c = this.chunks[0]!;
        const take = Math.min(need, c.length);
        out.set(take === c.length ? c : c.subarray(0, take), pos);
        pos += take;
        need -= take;
        this.buffered -= take;
        if (take === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(take);
      }
    }
    return out;
  }

  /** The next message, or null at a clean end of stream between messages. */
  async readFrame(maxBytes: number): Promise<unknown> {
    while (this.buffered < 4) {
      if (!(await this.fill())) {
        if (this.buffered === 0) return null;
        throw new SwarmProtocolError(`${this.what}: stream ended inside a frame header`);
      }
    }
    const head = await this.readExact(4);
    const len = new DataView(head.buffer, head.byteOffset, 4).getUint32(0);
    if (len > maxBytes) throw new SwarmProtocolError(`${this.what}: message of ${len} bytes exceeds the ${maxBytes}-byte limit`);
    const body = await this.readExact(len);
    try {
      return packr.unpack(body);
    } catch (err) {
      throw new SwarmProtocolError(`${this.what}: undecodable message`, { cause: err });
    }
  }
}

/** Sends bytes with back-pressure: waits for 'drain' whenever the stream's buffer is full. */
export async function sendAll(stream: Stream, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
  if (!stream.send(bytes)) await stream.onDrain({ signal });
}

/** Largest bulk payload sent as one write; keeps yamux windows and rate caps smooth. */
export const WRITE_CHUNK = 64 * 1024;
