// How a layer store's tree is kept in its layer.sqlite: the rows behind
// LayerStore's in-memory maps. Two layouts, chosen by LayerStore.open:
// PlainRows (paths and metadata in the clear: tests and benchmarks that hold
// no key) and SealedRows (sealed/sealed-rows.ts: the session's stores).
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { NinepTimes } from '../ninep/backend.ts';

export type StoreTimes = NinepTimes;

export interface StoreNode extends StoreTimes {
  id: number;
  /** Full Linux st_mode. */
  mode: number;
  uid: number;
  gid: number;
  rdev: number;
  /** Names referencing this node (hard links); directories keep 1. */
  nlink: number;
  /** Symlink content. */
  target: string | null;
  /** The qid path of the host file this was copied up from, kept so the guest's inode number does not change. */
  qid: bigint | null;
  /** Sealed stores: the version of the content file last synced (sealed/sealed-content-store.ts); absent is 0. */
  contentVersion?: number;
}

export type StoreEntry = { path: string; kind: 'node'; node: number; opaque: boolean; redirect: string | null } | { path: string; kind: 'whiteout' };

export type NewNodeFields = Omit<StoreNode, 'id' | 'nlink'>;

export interface LayerRows {
  /** Every node and entry (at open). */
  loadNodes(): StoreNode[];
  loadEntries(): StoreEntry[];
  /** A new node row; returns its id. */
  insertNode(fields: NewNodeFields): number;
  saveNode(node: StoreNode): void;
  deleteNode(id: number): void;
  putEntry(entry: StoreEntry): void;
  deleteEntry(path: string): void;
  /**
   * Paths of up to `limit` entries directly below `parent` whose names sort
   * after `after`, in name order, from an index; undefined when the rows
   * cannot order names (sealed: the store pages its in-memory names).
   */
  childrenAfter(parent: string, after: string, limit: number): string[] | undefined;
  /** SQLite's plan for childrenAfter (tests), if it has one. */
  explainChildrenAfter(): string | undefined;
  /**
   * LayerStore.transaction's bounds: between begin() and commit() node
   * writes may be held and written once at commit (a create saves its new
   * node twice and its folder once; sealed rows seal each node once). After
   * rollback() nothing held is written.
   */
  begin?(): void;
  commit?(): void;
  rollback?(): void;
}

export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export function nameOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Statements prepared once per SQL text. */
export class Statements {
  readonly #db: DatabaseSync;
  readonly #cache = new Map<string, StatementSync>();
  constructor(db: DatabaseSync) {
    this.#db = db;
  }
  get(sql: string): StatementSync {
    let s = this.#cache.get(sql);
    if (!s) {
      s = this.#db.prepare(sql);
      this.#cache.set(sql, s);
    }
    return s;
  }
}

const PLAIN_SCHEMA = `
CREATE TABLE IF NOT EXISTS nodes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL, rdev INTEGER NOT NULL DEFAULT 0,
  nlink INTEGER NOT NULL DEFAULT 0, target TEXT, qid TEXT,
  atime_s INTEGER NOT NULL, atime_ns INTEGER NOT NULL, mtime_s INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
  ctime_s INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, btime_s INTEGER NOT NULL, btime_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
  path TEXT PRIMARY KEY, parent TEXT NOT NULL, name TEXT NOT NULL,
  node INTEGER REFERENCES nodes(id), opaque INTEGER NOT NULL DEFAULT 0, redirect TEXT
);
CREATE INDEX IF NOT EXISTS entries_parent ON entries(parent);
CREATE INDEX IF NOT EXISTS entries_parent_name ON entries(parent, name);
`;

/** A folder's entries after a name, in name order: served by the entries_parent_name index. */
const CHILDREN_AFTER = 'SELECT path FROM entries WHERE parent = ? AND name > ? ORDER BY name LIMIT ?';

interface NodeRow {
  id: number;
  mode: number;
  uid: number;
  gid: number;
  rdev: number;
  nlink: number;
  target: string | null;
  qid: string | null;
  atime_s: number;
  atime_ns: number;
  mtime_s: number;
  mtime_ns: number;
  ctime_s: number;
  ctime_ns: number;
  btime_s: number;
  btime_ns: number;
}

interface EntryRow {
  path: string;
  node: number | null;
  opaque: number;
  redirect: string | null;
}

export class PlainRows implements LayerRows {
  readonly #db: DatabaseSync;
  readonly #stmt: Statements;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#stmt = new Statements(db);
    db.exec(PLAIN_SCHEMA);
  }

  loadNodes(): StoreNode[] {
    return (this.#db.prepare('SELECT * FROM nodes').all() as unknown as NodeRow[]).map((row) => ({
      id: row.id,
      mode: row.mode,
      uid: row.uid,
      gid: row.gid,
      rdev: row.rdev,
      nlink: row.nlink,
      target: row.target,
      qid: row.qid === null ? null : BigInt(row.qid),
      atimeSec: row.atime_s,
      atimeNsec: row.atime_ns,
      mtimeSec: row.mtime_s,
      mtimeNsec: row.mtime_ns,
      ctimeSec: row.ctime_s,
      ctimeNsec: row.ctime_ns,
      btimeSec: row.btime_s,
      btimeNsec: row.btime_ns,
    }));
  }

  loadEntries(): StoreEntry[] {
    return (this.#db.prepare('SELECT path, node, opaque, redirect FROM entries').all() as unknown as EntryRow[]).map((row) =>
      row.node === null
        ? { path: row.path, kind: 'whiteout' }
        : { path: row.path, kind: 'node', node: row.node, opaque: row.opaque !== 0, redirect: row.redirect },
    );
  }

  insertNode(fields: NewNodeFields): number {
    const result = this.#stmt
      .get(
        'INSERT INTO nodes (mode, uid, gid, rdev, nlink, target, qid, atime_s, atime_ns, mtime_s, mtime_ns, ctime_s, ctime_ns, btime_s, btime_ns) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(
        fields.mode,
        fields.uid,
        fields.gid,
        fields.rdev,
        fields.target,
        fields.qid === null ? null : fields.qid.toString(),
        fields.atimeSec,
        fields.atimeNsec,
        fields.mtimeSec,
        fields.mtimeNsec,
        fields.ctimeSec,
        fields.ctimeNsec,
        fields.btimeSec,
        fields.btimeNsec,
      );
    return Number(result.lastInsertRowid);
  }

  saveNode(node: StoreNode): void {
    this.#stmt
      .get(
        'UPDATE nodes SET mode = ?, uid = ?, gid = ?, rdev = ?, nlink = ?, target = ?, qid = ?, atime_s = ?, atime_ns = ?, mtime_s = ?, mtime_ns = ?, ctime_s = ?, ctime_ns = ?, btime_s = ?, btime_ns = ? WHERE id = ?',
      )
      .run(
        node.mode,
        node.uid,
        node.gid,
        node.rdev,
        node.nlink,
        node.target,
        node.qid === null ? null : node.qid.toString(),
        node.atimeSec,
        node.atimeNsec,
        node.mtimeSec,
        node.mtimeNsec,
        node.ctimeSec,
        node.ctimeNsec,
        node.btimeSec,
        node.btimeNsec,
        node.id,
      );
  }

  deleteNode(id: number): void {
    this.#stmt.get('DELETE FROM nodes WHERE id = ?').run(id);
  }

  putEntry(entry: StoreEntry): void {
    this.#stmt
      .get('INSERT OR REPLACE INTO entries (path, parent, name, node, opaque, redirect) VALUES (?, ?, ?, ?, ?, ?)')
      .run(
        entry.path,
        parentOf(entry.path),
        nameOf(entry.path),
        entry.kind === 'node' ? entry.node : null,
        entry.kind === 'node' && entry.opaque ? 1 : 0,
        entry.kind === 'node' ? entry.redirect : null,
      );
  }

  deleteEntry(path: string): void {
    this.#stmt.get('DELETE FROM entries WHERE path = ?').run(path);
  }

  childrenAfter(parent: string, after: string, limit: number): string[] {
    return (this.#stmt.get(CHILDREN_AFTER).all(parent, after, limit) as unknown as Array<{ path: string }>).map((row) => row.path);
  }

  explainChildrenAfter(): string {
    const rows = this.#db.prepare(`EXPLAIN QUERY PLAN ${CHILDREN_AFTER}`).all('/', '', 1) as unknown as Array<{ detail: string }>;
    return rows.map((r) => r.detail).join('; ');
  }
}
