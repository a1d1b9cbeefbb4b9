// The key that signs a user's table confirmations (users/<name>/tables-confirmed.json,
// src/dyntable/confirmations.ts). Like the state key (state-key.ts) it is
// derived, not stored:
//
//   tables key = HKDF-SHA256(disk key, salt = "", info = "pocketvm tables confirmations v1")
//
// so only someone who unwrapped the disk key with the passphrase can make a
// confirmation the launcher trusts; a copy of the stick without the
// passphrase can delete confirmations but not forge or edit one. HKDF is
// one-way: the key opens nothing (neither disk nor saved states). It lives in
// a Buffer that its user zeroes once the confirmations are signed or checked.
import { hkdfSync } from 'node:crypto';

export const TABLES_KEY_INFO = 'pocketvm tables confirmations v1';
export const TABLES_KEY_BYTES = 32;

export function deriveTablesKey(diskKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', diskKey, Buffer.alloc(0), TABLES_KEY_INFO, TABLES_KEY_BYTES));
}
