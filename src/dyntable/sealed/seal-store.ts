// Opening a layer store sealed: a new store gets its salt; an existing sealed
// store must answer its key check (a store copied from another user, or a
// damaged one, is refused, never half-read); a plain store left by an earlier
// version is sealed in place, once.
//
// Sealing in place, crash by crash: each content file is sealed into a
// temporary file renamed over the plain one (a file already sealed with this
// store's key is recognised and left alone, so a sealing cut short resumes);
// then every row moves to the sealed tables and the plain tables go, in one
// transaction; then the database is vacuumed with secure_delete, so its
// free pages keep no plaintext. (The stick's own free space may still hold
// the old plain files' clusters: a file system on a stick cannot be made to
// forget them from here.)
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { AuthError } from '../../errors.ts';
import { type ContentStore, contentPath } from '../content-store.ts';
import { type LayerRows, PlainRows } from '../layer-rows.ts';
import { advanceStore, anchorPathFor } from '../rollback-anchor.ts';
import { S_IFMT, S_IFREG } from '../../ninep/backend.ts';
import { StoreKeys, STORE_SALT_BYTES } from './keys.ts';
import { SealedContentStore } from './sealed-content-store.ts';
import { SealedFile } from './sealed-file.ts';
import { openRow, sealRow } from './row-seal.ts';
import { SealedRows } from './sealed-rows.ts';

export const SEALED_FORMAT = 'pocketvm-layer-sealed-1';
const PLAIN_FORMAT = 'pocketvm-layer-1';

function meta(db: DatabaseSync, key: string): string | undefined {
  return (db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
}

function setMeta(db: DatabaseSync, key: string, value: string): void {
  db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run(key, value);
}

function keyCheck(keys: StoreKeys): string {
  return keys.hash('check', 'pocketvm layer store').toString('hex');
}

export async function openSealedLayer(
  dir: string,
  db: DatabaseSync,
  atRestKey: Buffer,
): Promise<{ rows: LayerRows; content: ContentStore; sealed: true; close: () => void }> {
  const format = meta(db, 'format');
  const hasPlainTables = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'nodes'").get() !== undefined;
  if (format !== undefined && format !== SEALED_FORMAT && format !== PLAIN_FORMAT)
    throw new AuthError(`${dir} holds a layer store of an unknown format (${format})`);
  let saltHex = meta(db, 'salt');
  if (saltHex === undefined) {
    saltHex = randomBytes(STORE_SALT_BYTES).toString('hex');
    setMeta(db, 'salt', saltHex);
  }
  const keys = new StoreKeys(atRestKey, Buffer.from(saltHex, 'hex'));
  try {
    const check = meta(db, 'check');
    if (check === undefined) setMeta(db, 'check', keyCheck(keys));
    else if (check !== keyCheck(keys)) {
      throw new AuthError(`${dir} was sealed with another key: it is not this user's, or it is damaged`, {
        hint: 'a layer store copied from another user or stick cannot be opened; move it aside to start empty',
      });
    }
    const unwritten = new Set<number>();
    const content = new SealedContentStore(dir, keys, unwritten);
    if (format === PLAIN_FORMAT || (format === undefined && hasPlainTables)) await sealInPlace(dir, db, keys);
    const rows = new SealedRows(db, keys, unwritten);
    if (meta(db, 'format') !== SEALED_FORMAT) setMeta(db, 'format', SEALED_FORMAT);
    bindToAnchor(dir, db, keys, atRestKey);
    return { rows, content, sealed: true, close: () => keys.close() };
  } catch (error) {
    keys.close();
    throw error;
  }
}

/**
 * The store is the one users/<name>/anchor.json names, not an older copy
 * put back (rollback-anchor.ts); it then takes a new id, so the copy it is
 * now becomes "older" for every later open. Its id is a sealed meta row.
 */
function bindToAnchor(dir: string, db: DatabaseSync, keys: StoreKeys, atRestKey: Buffer): void {
  const sealed = meta(db, 'anchor');
  const held = sealed === undefined ? undefined : openRow<string>(keys.rows, 'meta:anchor', Buffer.from(sealed, 'hex'));
  const hasRows = db.prepare('SELECT 1 FROM sealed_nodes LIMIT 1').get() !== undefined;
  advanceStore(anchorPathFor(dirname(dir)), atRestKey, basename(dir), join(dir, 'layer.sqlite'), held, hasRows, (id) => {
    setMeta(db, 'anchor', sealRow(keys.rows, 'meta:anchor', id).toString('hex'));
    // Durable before the anchor forgets the old id.
    db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  });
}

async function sealContent(path: string, keys: StoreKeys, id: number): Promise<void> {
  const fileId = keys.fileId(id);
  try {
    await (await SealedFile.open(path, keys.fileKey(fileId), fileId)).close();
    return; // sealed by an earlier, interrupted run
  } catch {
    // plain: seal it below
  }
  const temp = `${path}.sealing`;
  const source = await open(path, 'r');
  const sealed = await SealedFile.create(temp, keys.fileKey(fileId), fileId);
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let position = 0; ;) {
      const { bytesRead } = await source.read(buf, 0, buf.length, position);
      if (bytesRead === 0) break;
      await sealed.write(buf.subarray(0, bytesRead), position);
      position += bytesRead;
    }
    await sealed.sync(true);
    buf.fill(0);
  } finally {
    await sealed.close();
    await source.close();
  }
  renameSync(temp, path);
}

async function sealInPlace(dir: string, db: DatabaseSync, keys: StoreKeys): Promise<void> {
  const plain = new PlainRows(db);
  const nodes = plain.loadNodes();
  const entries = plain.loadEntries();
  for (const node of nodes) {
    if ((node.mode & S_IFMT) !== S_IFREG) continue;
    const path = contentPath(dir, node.id);
    if (existsSync(path)) await sealContent(path, keys, node.id);
  }
  // Leftovers of an interrupted run.
  const data = join(dir, 'data');
  for (const fan of existsSync(data) ? readdirSync(data) : []) {
    for (const name of readdirSync(join(data, fan))) if (name.endsWith('.sealing')) rmSync(join(data, fan, name), { force: true });
  }
  db.exec('BEGIN');
  try {
    const sealed = new SealedRows(db, keys);
    for (const node of nodes) sealed.insertNodeWithId(node);
    for (const entry of entries) sealed.putEntry(entry);
    db.exec('DROP TABLE entries; DROP TABLE nodes;');
    setMeta(db, 'format', SEALED_FORMAT);
    db.exec('COMMIT');
  } catch (error) {
    db.exec('ROLLBACK');
    throw error;
  }
  db.exec('PRAGMA secure_delete = ON; VACUUM; PRAGMA wal_checkpoint(TRUNCATE);');
}
