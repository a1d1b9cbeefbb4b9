// users/<name>/anchor.json: one record that binds together the current
// versions of the user's files that a MAC alone cannot keep current, so that
// putting back an older copy of one of them is refused.
//
// A MAC (the sealed rows of layer.sqlite, the signed records of
// tables-confirmed.json) proves a file was written with the user's key, not
// that it is the latest one: an older copy of layer.sqlite, or of
// tables-confirmed.json still confirming a rule the person withdrew, verifies
// as well as the current one. So:
//
//   { "format": "pocketvm-anchor", "version": 1,
//     "stores": { "upper": { "id": "<hex>", "next"?: "<hex>" }, "files": {...} },
//     "tables": ["<mac of each trusted confirmation>", ...],
//     "mac": "<HMAC-SHA256 under the anchor key>" }
//
//   anchor key = HKDF-SHA256(at-rest key, salt = "", info = "pocketvm rollback anchor v1")
//
// - Each layer store keeps its own id in a sealed meta row; every open checks
//   it against the anchor and takes a new one (sealed/seal-store.ts). `next`
//   makes that crash-safe: the anchor names the new id before the store does,
//   and drops the old one after (either is accepted in between).
// - tables-confirmed.json: every confirmation the launcher trusts must be
//   one the anchor lists; confirming adds to the list first, withdrawing
//   takes from it after the file (confirmations.ts).
//
// Putting back one of these files alone is refused; so is an older
// anchor.json alone (its ids no longer match the stores). What cannot be
// detected without storage the holder cannot rewind: anchor.json, upper/,
// files/ and tables-confirmed.json all put back together from one moment
// (docs/security.md, "What the passphrase protects").
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { StickTamperedError } from '../errors.ts';
import { replaceFileSync } from '../primitives/atomic-replace.ts';
import { withFileLockSync } from '../primitives/file-lock-sync.ts';

const FORMAT = 'pocketvm-anchor';
const VERSION = 1;
const ANCHOR_KEY_INFO = 'pocketvm rollback anchor v1';

export interface StoreAnchor {
  id: string;
  /** A new id being taken (the store may already hold it). */
  next?: string;
}

export interface AnchorBody {
  stores: Record<string, StoreAnchor>;
  /** MACs (hex) of the confirmations that may be trusted; absent before the first check. */
  tables?: string[];
}

/** The anchor in a user's folder (users/<name>/anchor.json, beside upper/, files/ and tables-confirmed.json). */
export function anchorPathFor(userDir: string): string {
  return join(userDir, 'anchor.json');
}

export function deriveAnchorKey(atRestKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', atRestKey, Buffer.alloc(0), ANCHOR_KEY_INFO, 32));
}

function macOf(key: Buffer, body: AnchorBody): Buffer {
  return createHmac('sha256', key)
    .update(JSON.stringify([FORMAT, VERSION, body.stores, body.tables ?? null]))
    .digest();
}

export function rolledBack(file: string, what: string, hint: string): StickTamperedError {
  return new StickTamperedError(`${file} ${what}`, { hint, details: { reason: 'rolled-back', file } });
}

/** The anchor; undefined when there is none yet. A record that does not verify under this key is refused. */
export function readAnchor(path: string, atRestKey: Buffer): AnchorBody | undefined {
  if (!existsSync(path)) return undefined;
  let record: { format?: unknown; version?: unknown; stores?: unknown; tables?: unknown; mac?: unknown };
  try {
    record = JSON.parse(readFileSync(path, 'utf8')) as typeof record;
  } catch {
    record = {};
  }
  const body: AnchorBody = {
    stores: (record.stores ?? {}) as Record<string, StoreAnchor>,
    ...(Array.isArray(record.tables) ? { tables: record.tables as string[] } : {}),
  };
  const key = deriveAnchorKey(atRestKey);
  try {
    const given = typeof record.mac === 'string' && /^[0-9a-f]{64}$/.test(record.mac) ? Buffer.from(record.mac, 'hex') : undefined;
    if (
      record.format === FORMAT &&
      record.version === VERSION &&
      typeof record.stores === 'object' &&
      record.stores !== null &&
      given &&
      timingSafeEqual(given, macOf(key, body))
    )
      return body;
  } finally {
    key.fill(0);
  }
  throw new StickTamperedError(`${path} does not carry your signature: it was changed without your passphrase, or is another user's`, {
    hint: 'put back the anchor.json that belongs with these files; without it the launcher cannot tell whether they are current',
    details: { reason: 'anchor', file: path },
  });
}

/** Writes the anchor durably (replaceFileSync): what it names must outlive a pulled stick. */
export function writeAnchor(path: string, atRestKey: Buffer, body: AnchorBody): void {
  const key = deriveAnchorKey(atRestKey);
  let text: string;
  try {
    text = `${JSON.stringify({ format: FORMAT, version: VERSION, stores: body.stores, ...(body.tables ? { tables: body.tables } : {}), mac: macOf(key, body).toString('hex') })}\n`;
  } finally {
    key.fill(0);
  }
  mkdirSync(dirname(path), { recursive: true });
  replaceFileSync(path, text, { mode: 0o600 });
}

/**
 * A layer store's open: `held` is the id the store holds (undefined for a
 * store that never had one), `hasRows` whether it holds anything. Throws
 * when the store is older than the anchor says; otherwise records a new id
 * and calls `take(id)`, which must make the store hold it durably.
 */
export function advanceStore(
  anchorPath: string,
  atRestKey: Buffer,
  name: string,
  storeFile: string,
  held: string | undefined,
  hasRows: boolean,
  take: (id: string) => void,
): void {
  // Another session of the same user may rewrite the anchor meanwhile (its confirmations): one read-modify-write at a time.
  withAnchorLock(anchorPath, () => advanceStoreLocked(anchorPath, atRestKey, name, storeFile, held, hasRows, take));
}

/** Runs `update` (a read of the anchor and its rewrite) with no other process rewriting it meanwhile. */
export function withAnchorLock<T>(anchorPath: string, update: () => T): T {
  mkdirSync(dirname(anchorPath), { recursive: true });
  return withFileLockSync(`${anchorPath}.lock`, update);
}

function advanceStoreLocked(
  anchorPath: string,
  atRestKey: Buffer,
  name: string,
  storeFile: string,
  held: string | undefined,
  hasRows: boolean,
  take: (id: string) => void,
): void {
  const body = readAnchor(anchorPath, atRestKey) ?? { stores: {} };
  const known = body.stores[name];
  const restoreHint = `put back the ${name}/layer.sqlite that belongs with anchor.json (restore the user's whole folder from one backup), or move ${name}/ aside to start empty`;
  if (held !== undefined) {
    if (!known) throw rolledBack(storeFile, `is not the one ${anchorPath} knows (the anchor is missing, older, or another one)`, restoreHint);
    if (held !== known.id && held !== known.next)
      throw rolledBack(storeFile, 'is an older copy of itself (put back after a later session changed it)', restoreHint);
  } else if (known && hasRows) {
    throw rolledBack(storeFile, `is from before ${anchorPath} first named it: it was put back from an older copy`, restoreHint);
  }
  const next = randomBytes(16).toString('hex');
  // Crash-safe order: the anchor accepts both, the store takes the new one, the anchor forgets the old.
  body.stores[name] = { id: held ?? next, next };
  writeAnchor(anchorPath, atRestKey, body);
  take(next);
  body.stores[name] = { id: next };
  writeAnchor(anchorPath, atRestKey, body);
}
