import { blake3, createBLAKE3, type IHasher } from 'hash-wasm';

/** Lowercase hex BLAKE3-256 of bytes: the name of every shard and blob, and of the manifest (the model id). */
export function blake3Hex(bytes: Uint8Array): Promise<string> {
  return blake3(bytes);
}

/** An incremental BLAKE3 for data that arrives in pieces. */
export async function blake3Stream(): Promise<{ update(chunk: Uint8Array): void; digestHex(): string }> {
  const h: IHasher = await createBLAKE3();
  h.init();
  return {
    update: (chunk) => void h.update(chunk),
    digestHex: () => h.digest('hex'),
  };
}

const HEX64 = /^[0-9a-f]{64}$/;

/** True for a well-formed shard/model name (64 lowercase hex digits). */
export function isHash(s: string): boolean {
  return HEX64.test(s);
}
