// The disk key at rest: AES-256-GCM under the key derived from the passphrase
// (the KEK). GCM's tag makes a wrong passphrase, a tampered ciphertext and a
// wrapped key moved to another user (the user name is bound in as associated
// data) all fail the same way: unwrap throws, nothing half-decrypted escapes.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

export const DISK_KEY_BYTES = 32;
const IV_BYTES = 12;

export interface WrappedKey {
  /** base64 */
  iv: string;
  tag: string;
  ciphertext: string;
}

export class UnwrapError extends Error {
  constructor() {
    super('the wrapped key does not open with this key (wrong passphrase, or the wrapped key was altered)');
  }
}

export function newDiskKey(): Buffer {
  return randomBytes(DISK_KEY_BYTES);
}

export function wrapKey(key: Buffer, kek: Buffer, associatedData: string): WrappedKey {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', kek, iv);
  cipher.setAAD(Buffer.from(associatedData, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(key), cipher.final()]);
  return { iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), ciphertext: ciphertext.toString('base64') };
}

export function unwrapKey(wrapped: WrappedKey, kek: Buffer, associatedData: string): Buffer {
  try {
    const decipher = createDecipheriv('aes-256-gcm', kek, Buffer.from(wrapped.iv, 'base64'));
    decipher.setAAD(Buffer.from(associatedData, 'utf8'));
    decipher.setAuthTag(Buffer.from(wrapped.tag, 'base64'));
    const parts = [decipher.update(Buffer.from(wrapped.ciphertext, 'base64')), decipher.final()];
    const key = Buffer.concat(parts);
    // The pieces held the key too: only the returned Buffer (zeroed by its user) keeps it.
    for (const part of parts) part.fill(0);
    if (key.length !== DISK_KEY_BYTES) {
      key.fill(0);
      throw new UnwrapError();
    }
    return key;
  } catch {
    throw new UnwrapError();
  }
}
