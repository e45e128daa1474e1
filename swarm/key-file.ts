import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SwarmError } from './errors.ts';

/** A fixed libp2p identity kept in a file (protobuf-encoded Ed25519 key), created on first use. */
export async function loadOrCreateKey(file: string): Promise<PrivateKey> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new SwarmError(`cannot read key file ${file}`, { cause: err });
    const key = await generateKeyPair('Ed25519');
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, privateKeyToProtobuf(key), { mode: 0o600 });
    return key;
  }
  try {
    return privateKeyFromProtobuf(bytes);
  } catch (err) {
    throw new SwarmError(`key file ${file} does not hold a libp2p private key`, { cause: err });
  }
}
