// The registry's persistence: one SQLite file per user (node:sqlite), opened
// under the stick's database policy as a 'shared' database
// (primitives/stick-database.ts: the CLI and a running session share the
// file; each write is one short IMMEDIATE transaction).
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { RegistryError } from '../errors.ts';
import { REG_TYPE_CODE, regTypeFromCode, type RegValue } from './value.ts';

export const SCHEMA_VERSION = 1;
const SCHEMA = `
CREATE TABLE IF NOT EXISTS keys (
  scope TEXT NOT NULL,          -- 'user' or 'host:<fingerprint>'
  key_lc TEXT NOT NULL,         -- the path folded to lower case
  key TEXT NOT NULL,            -- the path as first written
  parent_lc TEXT NOT NULL,      -- '' for a top-level key
  PRIMARY KEY (scope, key_lc)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS keys_by_parent ON keys (parent_lc, scope);
CREATE TABLE IF NOT EXISTS vals (
  scope TEXT NOT NULL,
  key_lc TEXT NOT NULL,
  name_lc TEXT NOT NULL,
  name TEXT NOT NULL,
  type INTEGER NOT NULL,        -- REG_TYPE_CODE
  data ANY,
  PRIMARY KEY (scope, key_lc, name_lc)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  scope TEXT NOT NULL,
  key TEXT NOT NULL,            -- '' with name NULL: anything may have changed
  name TEXT                     -- NULL: the key itself (created, deleted, bulk)
);
`;

/** How many change rows are kept for watchers in other processes. */
const CHANGE_LOG_KEEP = 4096;

export interface StoredValue {
  name: string;
  nameLc: string;
  value: RegValue;
}

export interface ChangeRow {
  seq: number;
  scope: string;
  key: string;
  name: string | null;
}

type Row = Record<string, unknown>;

function encodeData(value: RegValue): string | number | bigint | Uint8Array {
  switch (value.type) {
    case 'bool':
      return value.data ? 1 : 0;
    case 'multi-string':
      return JSON.stringify(value.data);
    case 'int64': {
      // Eight bytes, little-endian: exact for the whole range without bigint reads.
      const bytes = new Uint8Array(8);
      new DataView(bytes.buffer).setBigInt64(0, value.data, true);
      return bytes;
    }
    default:
      return value.data;
  }
}

function decodeValue(typeCode: unknown, data: unknown): RegValue {
  const type = regTypeFromCode(Number(typeCode));
  switch (type) {
    case 'string':
    case 'expand-string':
      return { type, data: String(data) };
    case 'int32':
      return { type, data: Number(data) };
    case 'int64': {
      const bytes = data as Uint8Array;
      return { type, data: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigInt64(0, true) };
    }
    case 'bool':
      return { type, data: Number(data) !== 0 };
    case 'binary':
      return { type, data: data instanceof Uint8Array ? data : new Uint8Array() };
    case 'multi-string':
      return { type, data: JSON.parse(String(data)) as string[] };
    default:
      throw new RegistryError(`the registry holds a value of unknown type ${String(typeCode)}`, {
        hint: 'it was written by a newer pocketvm',
        details: { reason: 'unknown-type' },
      });
  }
}

export class RegistryStore {
  readonly db: DatabaseSync;
  private readonly q: Record<string, StatementSync>;

  constructor(db: DatabaseSync, options: { readOnly?: boolean } = {}) {
    this.db = db;
    const version = Number((db.prepare('PRAGMA user_version').get() as Row)['user_version']);
    if (version > SCHEMA_VERSION) {
      throw new RegistryError(`the registry was written by a newer pocketvm (schema ${version}; this one knows ${SCHEMA_VERSION})`, {
        hint: 'use the launcher that wrote it',
        details: { reason: 'schema' },
      });
    }
    if (version < SCHEMA_VERSION && !options.readOnly) {
      db.exec('BEGIN IMMEDIATE');
      try {
        db.exec(SCHEMA);
        db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
        db.exec('COMMIT');
      } catch (error) {
        db.exec('ROLLBACK');
        throw error;
      }
    }
    const prepare = (sql: string) => db.prepare(sql);
    this.q = {
      getValue: prepare('SELECT name, type, data FROM vals WHERE scope = ? AND key_lc = ? AND name_lc = ?'),
      // The merged read of the two stored layers in one statement: this host's first.
      getMerged: prepare('SELECT scope, type, data FROM vals WHERE scope IN (?, ?) AND key_lc = ? AND name_lc = ? ORDER BY scope = ? LIMIT 1'),
      values: prepare('SELECT name, name_lc, type, data FROM vals WHERE scope = ? AND key_lc = ? ORDER BY name_lc'),
      countValues: prepare('SELECT count(*) AS n FROM vals WHERE scope = ? AND key_lc = ?'),
      hasValue: prepare('SELECT 1 FROM vals WHERE scope = ? AND key_lc = ? AND name_lc = ?'),
      insertValue: prepare('INSERT OR IGNORE INTO vals (scope, key_lc, name_lc, name, type, data) VALUES (?, ?, ?, ?, ?, ?)'),
      updateValue: prepare('UPDATE vals SET type = ?, data = ? WHERE scope = ? AND key_lc = ? AND name_lc = ?'),
      deleteValue: prepare('DELETE FROM vals WHERE scope = ? AND key_lc = ? AND name_lc = ?'),
      keyName: prepare('SELECT key FROM keys WHERE scope = ? AND key_lc = ?'),
      insertKey: prepare('INSERT OR IGNORE INTO keys (scope, key_lc, key, parent_lc) VALUES (?, ?, ?, ?)'),
      children: prepare('SELECT key, key_lc FROM keys WHERE parent_lc = ? AND scope = ?'),
      deleteKeys: prepare("DELETE FROM keys WHERE scope = ? AND (key_lc = ? OR (key_lc > ? || '\\' AND key_lc < ? || ']'))"),
      deleteKeyValues: prepare("DELETE FROM vals WHERE scope = ? AND (key_lc = ? OR (key_lc > ? || '\\' AND key_lc < ? || ']'))"),
      keysUnder: prepare("SELECT key, key_lc FROM keys WHERE scope = ? AND (key_lc = ? OR (key_lc > ? || '\\' AND key_lc < ? || ']'))"),
      allKeys: prepare('SELECT key, key_lc FROM keys WHERE scope = ?'),
      valuesUnder: prepare("SELECT key_lc, name, name_lc, type, data FROM vals WHERE scope = ? AND (key_lc = ? OR (key_lc > ? || '\\' AND key_lc < ? || ']'))"),
      allValues: prepare('SELECT key_lc, name, name_lc, type, data FROM vals WHERE scope = ?'),
      logChange: prepare('INSERT INTO changes (scope, key, name) VALUES (?, ?, ?)'),
      trimChanges: prepare('DELETE FROM changes WHERE seq <= ?'),
      changesSince: prepare('SELECT seq, scope, key, name FROM changes WHERE seq > ? ORDER BY seq'),
      firstSeq: prepare('SELECT min(seq) AS seq FROM changes'),
      maxSeq: prepare("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0) AS seq"),
      dataVersion: prepare('PRAGMA data_version'),
    };
  }

  getValue(scope: string, keyLc: string, nameLc: string): { name: string; value: RegValue } | undefined {
    const row = this.q['getValue']!.get(scope, keyLc, nameLc) as Row | undefined;
    return row ? { name: row['name'] as string, value: decodeValue(row['type'], row['data']) } : undefined;
  }

  values(scope: string, keyLc: string): StoredValue[] {
    return (this.q['values']!.all(scope, keyLc) as Row[]).map((row) => ({
      name: row['name'] as string,
      nameLc: row['name_lc'] as string,
      value: decodeValue(row['type'], row['data']),
    }));
  }

  countValues(scope: string, keyLc: string): number {
    return Number((this.q['countValues']!.get(scope, keyLc) as Row)['n']);
  }

  hasValue(scope: string, keyLc: string, nameLc: string): boolean {
    return this.q['hasValue']!.get(scope, keyLc, nameLc) !== undefined;
  }

  /** The key's path as stored (case preserved), if it exists in `scope`. */
  keyName(scope: string, keyLc: string): string | undefined {
    return (this.q['keyName']!.get(scope, keyLc) as Row | undefined)?.['key'] as string | undefined;
  }

  /** Creates the key with the path components `parts` and its ancestors; true if it was new. */
  ensureKey(scope: string, parts: readonly string[]): boolean {
    const folded = parts.map((part) => part.toLowerCase());
    if (this.keyName(scope, folded.join('\\')) !== undefined) return false;
    // A new key under an existing parent keeps the parent's spelling.
    let path = '';
    for (let depth = 1; depth <= parts.length; depth++) {
      const keyLc = folded.slice(0, depth).join('\\');
      const stored = depth < parts.length ? this.keyName(scope, keyLc) : undefined;
      if (stored !== undefined) {
        path = stored;
        continue;
      }
      path = path === '' ? parts[depth - 1]! : `${path}\\${parts[depth - 1]!}`;
      this.q['insertKey']!.run(scope, keyLc, path, folded.slice(0, depth - 1).join('\\'));
    }
    return true;
  }

  children(scope: string, parentLc: string): Array<{ key: string; keyLc: string }> {
    return (this.q['children']!.all(parentLc, scope) as Row[]).map((row) => ({ key: row['key'] as string, keyLc: row['key_lc'] as string }));
  }

  /** Sets a value; true if it is new (false: an existing value was replaced, its name's spelling kept). */
  setValue(scope: string, keyLc: string, nameLc: string, name: string, value: RegValue): boolean {
    const type = REG_TYPE_CODE[value.type];
    const data = encodeData(value);
    if (Number(this.q['insertValue']!.run(scope, keyLc, nameLc, name, type, data).changes) > 0) return true;
    this.q['updateValue']!.run(type, data, scope, keyLc, nameLc);
    return false;
  }

  /** The value of `hostScope`, else of `userScope`: which scope it came from, and the value. */
  getMerged(hostScope: string, userScope: string, keyLc: string, nameLc: string): { scope: string; value: RegValue } | undefined {
    const row = this.q['getMerged']!.get(hostScope, userScope, keyLc, nameLc, userScope) as Row | undefined;
    return row ? { scope: row['scope'] as string, value: decodeValue(row['type'], row['data']) } : undefined;
  }

  deleteValue(scope: string, keyLc: string, nameLc: string): boolean {
    return Number(this.q['deleteValue']!.run(scope, keyLc, nameLc).changes) > 0;
  }

  /** Deletes the key, its subkeys and all their values; true if the key existed. */
  deleteKey(scope: string, keyLc: string): boolean {
    this.q['deleteKeyValues']!.run(scope, keyLc, keyLc, keyLc);
    return Number(this.q['deleteKeys']!.run(scope, keyLc, keyLc, keyLc).changes) > 0;
  }

  /** Every key in `scope` at or below `keyLc` ('' for all). */
  keysUnder(scope: string, keyLc: string): Array<{ key: string; keyLc: string }> {
    const rows = (keyLc === '' ? this.q['allKeys']!.all(scope) : this.q['keysUnder']!.all(scope, keyLc, keyLc, keyLc)) as Row[];
    return rows.map((row) => ({ key: row['key'] as string, keyLc: row['key_lc'] as string }));
  }

  /** Every value in `scope` at or below `keyLc` ('' for all). */
  valuesUnder(scope: string, keyLc: string): Array<StoredValue & { keyLc: string }> {
    const rows = (keyLc === '' ? this.q['allValues']!.all(scope) : this.q['valuesUnder']!.all(scope, keyLc, keyLc, keyLc)) as Row[];
    return rows.map((row) => ({
      keyLc: row['key_lc'] as string,
      name: row['name'] as string,
      nameLc: row['name_lc'] as string,
      value: decodeValue(row['type'], row['data']),
    }));
  }

  logChange(scope: string, key: string, name: string | null): void {
    const seq = Number(this.q['logChange']!.run(scope, key, name).lastInsertRowid);
    if (seq % 256 === 0) this.q['trimChanges']!.run(seq - CHANGE_LOG_KEEP);
  }

  changesSince(seq: number): ChangeRow[] {
    return (this.q['changesSince']!.all(seq) as Row[]).map((row) => ({
      seq: Number(row['seq']),
      scope: row['scope'] as string,
      key: row['key'] as string,
      name: (row['name'] as string | null) ?? null,
    }));
  }

  /** The oldest change still logged (older ones were trimmed); undefined when the log is empty. */
  firstSeq(): number | undefined {
    const seq = (this.q['firstSeq']!.get() as Row)['seq'];
    return seq === null || seq === undefined ? undefined : Number(seq);
  }

  maxSeq(): number {
    return Number((this.q['maxSeq']!.get() as Row)['seq']);
  }

  /** Changes whenever another connection commits (PRAGMA data_version). */
  dataVersion(): number {
    return Number((this.q['dataVersion']!.get() as Row)['data_version']);
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}
