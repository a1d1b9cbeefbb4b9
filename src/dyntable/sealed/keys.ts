// The keys that seal what the guest writes through /host (the layer stores
// users/<name>/upper/ and users/<name>/files/: contents, names, metadata).
//
//   at-rest key = HKDF-SHA256(disk key, salt = "", info = "pocketvm at rest v1")
//   store keys  = HKDF-SHA256(at-rest key, salt = the store's random salt, info = "pocketvm layer <purpose> v1")
//
// Derived, not a second random key wrapped like the disk key, for the reasons
// src/auth/state-key.ts gives for saved states: the disk key is already
// random and wrapped by the passphrase; nothing new is stored in user.json; a
// passphrase change re-wraps the same disk key, so sealed files stay
// readable; HKDF is one-way, so the session holds a key that opens the layer
// stores and nothing else (not the disk). A wrapped key would buy rotation
// independent of the disk key, which nothing here needs (the disk key itself
// is never rotated without re-encrypting everything anyway).
//
// Each store has its own random salt (kept in its layer.sqlite), so upper/ and
// files/ never share a key, a store rebuilt from scratch gets fresh keys, and
// file IDs and row keys of one store mean nothing in another.
//
// Keys live only in Buffers, zeroed by close(); never as hex or base64.
import { createHmac, hkdfSync } from 'node:crypto';

export const AT_REST_KEY_INFO = 'pocketvm at rest v1';
export const AT_REST_KEY_BYTES = 32;
export const STORE_SALT_BYTES = 32;

export function deriveAtRestKey(diskKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', diskKey, Buffer.alloc(0), AT_REST_KEY_INFO, AT_REST_KEY_BYTES));
}

function derive(key: Buffer, salt: Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', key, salt, `pocketvm layer ${purpose} v1`, 32));
}

/** The keys of one layer store. */
export class StoreKeys {
  /** Per-file content keys come from this (with the file's ID). */
  readonly #content: Buffer;
  /** Seals the values of layer.sqlite's rows. */
  readonly rows: Buffer;
  /** Keyed hashes: row keys of paths, file IDs of nodes. */
  readonly #names: Buffer;
  #closed = false;

  constructor(atRestKey: Buffer, salt: Buffer) {
    if (atRestKey.length !== AT_REST_KEY_BYTES) throw new Error(`at-rest key must be ${AT_REST_KEY_BYTES} bytes`);
    this.#content = derive(atRestKey, salt, 'content');
    this.rows = derive(atRestKey, salt, 'rows');
    this.#names = derive(atRestKey, salt, 'names');
  }

  #check(): void {
    if (this.#closed) throw new Error('layer store keys are closed');
  }

  /** A keyed hash (16 bytes of HMAC-SHA256) of `label` + `value`: equal inputs give equal outputs, nothing else is learnt. */
  hash(label: string, value: string | Buffer): Buffer {
    this.#check();
    return createHmac('sha256', this.#names).update(label).update('\0').update(value).digest().subarray(0, 16);
  }

  /** The file ID of a node's content: bound to the node, so files swapped between nodes do not open. */
  fileId(node: number): Buffer {
    const id = Buffer.alloc(8);
    id.writeBigUInt64BE(BigInt(node));
    return this.hash('file', id);
  }

  /** The content key of one file (the caller zeroes it after use). */
  fileKey(fileId: Buffer): Buffer {
    this.#check();
    return Buffer.from(hkdfSync('sha256', this.#content, fileId, 'pocketvm sealed file v1', 32));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#content.fill(0);
    this.rows.fill(0);
    this.#names.fill(0);
  }
}
