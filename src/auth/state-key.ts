// The key that encrypts a suspended guest's saved state (users/<name>/state/).
//
// Guest memory holds secrets, so the state is encrypted like the disk, under
// a key only the user's passphrase leads to. It is derived, not stored:
//
//   state key = HKDF-SHA256(disk key, salt = "", info = "pocketvm vmstate v1")
//
// computed at login while the disk key is still in memory, and kept by the
// session instead of it (the launcher zeroes its copy of the disk key once
// QEMU has the disk open). Each state file then gets its own key,
// HKDF-SHA256(state key, a random 32-byte salt from the file's header,
// "pocketvm vmstate file v1") (src/vmm/state-cipher.ts).
//
// Why derived rather than a random state key wrapped like the disk key:
// nothing new is stored on the stick and user.json is untouched; a passphrase
// change re-wraps the same disk key, so a state suspended before it still
// opens after it; and HKDF is one-way, so the session's memory holds a key
// that opens saved states and nothing else (not the disk). A wrapped key
// would buy independent rotation, which nothing here needs.
import { hkdfSync } from 'node:crypto';

export const STATE_KEY_INFO = 'pocketvm vmstate v1';
export const STATE_KEY_BYTES = 32;

export function deriveStateKey(diskKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', diskKey, Buffer.alloc(0), STATE_KEY_INFO, STATE_KEY_BYTES));
}
