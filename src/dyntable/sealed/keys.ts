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
// Keys never exist as hex or base64. A derived key is held as a KeyObject:
// its bytes live in native memory that Node clears when it frees them
// (OpenSSL's clear_free), the Buffer it came from is zeroed at once, and
// close() drops every reference. Not Buffers kept for each call: a cipher
// or HMAC given a Buffer key copies it into such native memory anyway, and
// checking a Buffer for being a key costs two thrown exceptions per call
// (tens of microseconds; a 64 KiB block's AES-GCM costs about as much).
import { createHmac, createSecretKey, hkdfSync, type KeyObject } from 'node:crypto';

export const AT_REST_KEY_INFO = 'pocketvm at rest v1';
export const AT_REST_KEY_BYTES = 32;
export const STORE_SALT_BYTES = 32;

export function deriveAtRestKey(diskKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', diskKey, Buffer.alloc(0), AT_REST_KEY_INFO, AT_REST_KEY_BYTES));
}

function derive(key: Buffer, salt: Buffer, purpose: string): KeyObject {
  return secretKey(Buffer.from(hkdfSync('sha256', key, salt, `pocketvm layer ${purpose} v1`, 32)));
}

/** A KeyObject of `bytes`, which are zeroed. */
export function secretKey(bytes: Buffer): KeyObject {
  try {
    return createSecretKey(bytes);
  } finally {
    bytes.fill(0);
  }
}

/** The keys of one layer store. */
export class StoreKeys {
  /** Per-file content keys come from this (with the file's ID). */
  #content: KeyObject | undefined;
  #rows: KeyObject | undefined;
  /** Keyed hashes: row keys of paths, file IDs of nodes. */
  #names: KeyObject | undefined;
  #closed = false;

  constructor(atRestKey: Buffer, salt: Buffer) {
    if (atRestKey.length !== AT_REST_KEY_BYTES) throw new Error(`at-rest key must be ${AT_REST_KEY_BYTES} bytes`);
    this.#content = derive(atRestKey, salt, 'content');
    this.#rows = derive(atRestKey, salt, 'rows');
    this.#names = derive(atRestKey, salt, 'names');
  }

  #check(key: KeyObject | undefined): KeyObject {
    if (this.#closed || !key) throw new Error('layer store keys are closed');
    return key;
  }

  /** Seals the values of layer.sqlite's rows. */
  get rows(): KeyObject {
    return this.#check(this.#rows);
  }

  /** A keyed hash (16 bytes of HMAC-SHA256) of `label` + `value`: equal inputs give equal outputs, nothing else is learnt. */
  hash(label: string, value: string | Buffer): Buffer {
    return createHmac('sha256', this.#check(this.#names)).update(label).update('\0').update(value).digest().subarray(0, 16);
  }

  /** The file ID of a node's content: bound to the node, so files swapped between nodes do not open. */
  fileId(node: number): Buffer {
    const id = Buffer.alloc(8);
    id.writeBigUInt64BE(BigInt(node));
    return this.hash('file', id);
  }

  /** The content key of one file (the caller zeroes it after use). */
  fileKey(fileId: Buffer): Buffer {
    return Buffer.from(hkdfSync('sha256', this.#check(this.#content), fileId, 'pocketvm sealed file v1', 32));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#content = this.#rows = this.#names = undefined;
  }
}
