// A small file store on the stick: users/<name>/upper/ (where changes to
// host-resolved paths land) and users/<name>/files/ (what FIT entries hold).
//
// A stick is often FAT32/exFAT: no permissions, owners, symlinks, hard links,
// or case-sensitive names, and names like `a:b` are illegal. So the store
// keeps the tree as data and the contents as numbered files:
//
//   <dir>/layer.sqlite        entries (guest path → node | whiteout, opaque,
//                             redirect) and nodes (mode, owner, times,
//                             symlink target, nlink)
//   <dir>/data/<xx>/<id>      the content of regular file node <id>
//                             (fanned out: FAT32 allows ~65k names per folder)
//
// Guest names never become host names, so nothing stored here can point
// anywhere on the host: confinement holds by construction. Entries are keyed
// by full guest path (case-sensitive, like the guest). Whiteouts hide a host
// file the guest deleted; an opaque directory hides all host children (rmdir
// then mkdir); a redirect says "this directory's host side is that other path
// in the same entry" (a host directory the guest renamed).
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { type NinepTimes, S_IFDIR, S_IFMT, S_IFREG } from './ninep/backend.ts';

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
}

export type StoreEntry =
  | { path: string; kind: 'node'; node: number; opaque: boolean; redirect: string | null }
  | { path: string; kind: 'whiteout' };

export type NewNode = Omit<StoreNode, 'id' | 'nlink'>;

const hrBase = process.hrtime.bigint();
const epochBaseNs = BigInt(Date.now()) * 1_000_000n;

/** Now as seconds + nanoseconds (monotonic since start, anchored to the wall clock). */
export function nowTimespec(): { sec: number; nsec: number } {
  const ns = process.hrtime.bigint() - hrBase + epochBaseNs;
  return { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) };
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

function nameOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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

/** fsync of a directory (its entries); hosts that cannot open one for it (Windows) have nothing to sync. */
async function syncDirectory(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EACCES' && code !== 'EBADF') throw error;
  } finally {
    await fh?.close().catch(() => {});
  }
}

export class LayerStore {
  readonly dir: string;
  readonly #db: DatabaseSync;
  readonly #entries = new Map<string, StoreEntry>();
  readonly #children = new Map<string, Set<string>>();
  readonly #nodes = new Map<number, StoreNode>();
  /** Open handles per node: an unlinked node's content lives until the last close. */
  readonly #openCount = new Map<number, number>();
  /** Nodes whose times changed through writes, saved on flush. */
  readonly #dirty = new Set<number>();
  readonly #statements = new Map<string, StatementSync>();
  /** data/<xx> folders known to exist. */
  readonly #fanouts = new Set<string>();
  #closed = false;

  private constructor(dir: string, db: DatabaseSync) {
    this.dir = dir;
    this.#db = db;
  }

  /** Open (creating if needed) the store in `dir`. */
  static open(dir: string): LayerStore {
    mkdirSync(join(dir, 'data'), { recursive: true });
    const db = new DatabaseSync(join(dir, 'layer.sqlite'));
    // One launcher at a time holds the stick; exclusive locking also lets WAL
    // work without shared memory (FAT sticks).
    db.exec('PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;');
    db.exec(SCHEMA);
    db.prepare("INSERT OR IGNORE INTO meta(key, value) VALUES ('format', 'pocketvm-layer-1')").run();
    const store = new LayerStore(dir, db);
    store.#load();
    return store;
  }

  #stmt(sql: string): StatementSync {
    let s = this.#statements.get(sql);
    if (!s) {
      s = this.#db.prepare(sql);
      this.#statements.set(sql, s);
    }
    return s;
  }

  #load(): void {
    for (const row of this.#db.prepare('SELECT * FROM nodes').all() as unknown as NodeRow[]) {
      this.#nodes.set(row.id, {
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
      });
    }
    const referenced = new Map<number, number>();
    for (const row of this.#db.prepare('SELECT path, node, opaque, redirect FROM entries').all() as unknown as EntryRow[]) {
      const entry: StoreEntry =
        row.node === null ? { path: row.path, kind: 'whiteout' } : { path: row.path, kind: 'node', node: row.node, opaque: row.opaque !== 0, redirect: row.redirect };
      this.#remember(entry);
      if (row.node !== null) referenced.set(row.node, (referenced.get(row.node) ?? 0) + 1);
    }
    // Repair after a crash: link counts follow the entries, and nodes nobody
    // names any more (unlinked while open when the launcher died) go away.
    this.transaction(() => {
      for (const node of [...this.#nodes.values()]) {
        const links = referenced.get(node.id) ?? 0;
        if (links === 0) this.#dropNode(node.id);
        else if ((node.mode & S_IFMT) !== S_IFDIR && node.nlink !== links) {
          node.nlink = links;
          this.#saveNode(node);
        }
      }
    });
  }

  #remember(entry: StoreEntry): void {
    this.#entries.set(entry.path, entry);
    const parent = parentOf(entry.path);
    let set = this.#children.get(parent);
    if (!set) {
      set = new Set();
      this.#children.set(parent, set);
    }
    set.add(nameOf(entry.path));
  }

  #forget(path: string): void {
    this.#entries.delete(path);
    const parent = parentOf(path);
    const set = this.#children.get(parent);
    set?.delete(nameOf(path));
    if (set?.size === 0) this.#children.delete(parent);
  }

  /** Run `fn` as one SQLite transaction (nested calls join the outer one). */
  transaction<T>(fn: () => T): T {
    if (this.#db.isTransaction) return fn();
    this.#db.exec('BEGIN');
    try {
      const result = fn();
      this.#db.exec('COMMIT');
      return result;
    } catch (error) {
      this.#db.exec('ROLLBACK');
      throw error;
    }
  }

  get(path: string): StoreEntry | undefined {
    return this.#entries.get(path);
  }

  /** Names of the entries directly below `path` (whiteouts included). */
  childNames(path: string): string[] {
    return [...(this.#children.get(path) ?? [])];
  }

  /**
   * Up to `limit` entries directly below `path` whose names sort after
   * `after` (whiteouts included), in name order: a listing pages through a
   * folder of any size with this (indexed), never copying all its names.
   */
  childrenAfter(path: string, after: string, limit: number): StoreEntry[] {
    const rows = this.#stmt(CHILDREN_AFTER).all(path, after, limit) as unknown as Array<{ path: string }>;
    const out: StoreEntry[] = [];
    for (const row of rows) {
      const entry = this.#entries.get(row.path);
      if (entry) out.push(entry);
    }
    return out;
  }

  /** SQLite's plan for childrenAfter (tests: it must walk the (parent, name) index, not sort). */
  explainChildrenAfter(): string {
    const rows = this.#db.prepare(`EXPLAIN QUERY PLAN ${CHILDREN_AFTER}`).all('/', '', 1) as unknown as Array<{ detail: string }>;
    return rows.map((r) => r.detail).join('; ');
  }

  /** Whether anything (an entry or a whiteout) is directly below `path`. */
  hasChildren(path: string): boolean {
    return (this.#children.get(path)?.size ?? 0) > 0;
  }

  /** Every entry at or below `path`. */
  subtree(path: string): StoreEntry[] {
    const out: StoreEntry[] = [];
    const visit = (p: string) => {
      const e = this.#entries.get(p);
      if (e) out.push(e);
      for (const name of this.#children.get(p) ?? []) visit(p === '/' ? `/${name}` : `${p}/${name}`);
    };
    visit(path);
    return out;
  }

  node(id: number): StoreNode {
    const node = this.#nodes.get(id);
    if (!node) throw new Error(`layer store ${this.dir}: node ${id} is missing`);
    return node;
  }

  /** Where the content of a regular file node lives. */
  dataPath(id: number): string {
    return join(this.dir, 'data', (id & 0xff).toString(16).padStart(2, '0'), String(id));
  }

  /** A new node (not yet named by any entry); a regular file gets an empty content file. */
  async createNode(fields: NewNode): Promise<StoreNode> {
    return this.createNodeSync(fields);
  }

  /**
   * createNode, synchronously: one INSERT and, for a regular file, one
   * create of its content file on the stick (microseconds), so a guest's
   * create is one transaction with its entry, not four trips through libuv.
   */
  createNodeSync(fields: NewNode): StoreNode {
    const result = this.#stmt(
      'INSERT INTO nodes (mode, uid, gid, rdev, nlink, target, qid, atime_s, atime_ns, mtime_s, mtime_ns, ctime_s, ctime_ns, btime_s, btime_ns) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ).run(
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
    const node: StoreNode = { ...fields, id: Number(result.lastInsertRowid), nlink: 0 };
    this.#nodes.set(node.id, node);
    if ((node.mode & S_IFMT) === S_IFREG) {
      const path = this.dataPath(node.id);
      const fanout = join(path, '..');
      if (!this.#fanouts.has(fanout)) {
        mkdirSync(fanout, { recursive: true });
        this.#fanouts.add(fanout);
      }
      closeSync(openSync(path, 'w'));
    }
    return node;
  }

  #saveNode(node: StoreNode): void {
    this.#stmt(
      'UPDATE nodes SET mode = ?, uid = ?, gid = ?, rdev = ?, nlink = ?, target = ?, qid = ?, atime_s = ?, atime_ns = ?, mtime_s = ?, mtime_ns = ?, ctime_s = ?, ctime_ns = ?, btime_s = ?, btime_ns = ? WHERE id = ?',
    ).run(
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
    this.#dirty.delete(node.id);
  }

  /** Change a node's metadata and save it. */
  updateNode(id: number, patch: Partial<Omit<StoreNode, 'id'>>): StoreNode {
    const node = this.node(id);
    Object.assign(node, patch);
    this.#saveNode(node);
    return node;
  }

  /** Content writes touch mtime/ctime in memory; flush() saves them (cheap on the hot path). */
  touchForWrite(id: number): void {
    const node = this.#nodes.get(id);
    if (!node) return;
    const t = nowTimespec();
    node.mtimeSec = node.ctimeSec = t.sec;
    node.mtimeNsec = node.ctimeNsec = t.nsec;
    this.#dirty.add(id);
  }

  flush(): void {
    if (this.#closed || this.#dirty.size === 0) return;
    this.transaction(() => {
      for (const id of [...this.#dirty]) {
        const node = this.#nodes.get(id);
        if (node) this.#saveNode(node);
        this.#dirty.delete(id);
      }
    });
  }

  /**
   * Put `entry` at its path, replacing what was there. A node entry gains a
   * link; a replaced node entry loses one.
   */
  setEntry(entry: StoreEntry): void {
    this.transaction(() => {
      const old = this.#entries.get(entry.path);
      if (old?.kind === 'node' && !(entry.kind === 'node' && entry.node === old.node)) this.#unlinkNode(old.node);
      if (entry.kind === 'node' && !(old?.kind === 'node' && old.node === entry.node)) {
        const node = this.node(entry.node);
        node.nlink = (node.mode & S_IFMT) === S_IFDIR ? 1 : node.nlink + 1;
        this.#saveNode(node);
      }
      this.#stmt('INSERT OR REPLACE INTO entries (path, parent, name, node, opaque, redirect) VALUES (?, ?, ?, ?, ?, ?)').run(
        entry.path,
        parentOf(entry.path),
        nameOf(entry.path),
        entry.kind === 'node' ? entry.node : null,
        entry.kind === 'node' && entry.opaque ? 1 : 0,
        entry.kind === 'node' ? entry.redirect : null,
      );
      this.#remember(entry);
    });
  }

  /** Remove the entry at `path` (its node loses a link). */
  removeEntry(path: string): void {
    this.transaction(() => {
      const old = this.#entries.get(path);
      if (!old) return;
      this.#stmt('DELETE FROM entries WHERE path = ?').run(path);
      this.#forget(path);
      if (old.kind === 'node') this.#unlinkNode(old.node);
    });
  }

  /**
   * Move every entry at or below `from` to the same place below `to` (rename
   * of a directory or file). Entries already at or below `to` must have been
   * removed by the caller.
   */
  moveTree(from: string, to: string): void {
    this.transaction(() => {
      for (const entry of this.subtree(from)) {
        const moved = { ...entry, path: to + entry.path.slice(from.length) } as StoreEntry;
        this.#stmt('DELETE FROM entries WHERE path = ?').run(entry.path);
        this.#forget(entry.path);
        this.#stmt('INSERT OR REPLACE INTO entries (path, parent, name, node, opaque, redirect) VALUES (?, ?, ?, ?, ?, ?)').run(
          moved.path,
          parentOf(moved.path),
          nameOf(moved.path),
          moved.kind === 'node' ? moved.node : null,
          moved.kind === 'node' && moved.opaque ? 1 : 0,
          moved.kind === 'node' ? moved.redirect : null,
        );
        this.#remember(moved);
      }
    });
  }

  #unlinkNode(id: number): void {
    const node = this.#nodes.get(id);
    if (!node) return;
    node.nlink = (node.mode & S_IFMT) === S_IFDIR ? 0 : Math.max(0, node.nlink - 1);
    if (node.nlink === 0 && !this.#openCount.get(id)) this.#dropNode(id);
    else this.#saveNode(node);
  }

  #dropNode(id: number): void {
    this.#stmt('DELETE FROM nodes WHERE id = ?').run(id);
    this.#nodes.delete(id);
    this.#dirty.delete(id);
    rmSync(this.dataPath(id), { force: true });
  }

  /** Forget a node no entry names (a copy-up that failed half-way). */
  discardNode(id: number): void {
    const node = this.#nodes.get(id);
    if (node && node.nlink === 0 && !this.#openCount.get(id)) this.transaction(() => this.#dropNode(id));
  }

  /** A handle opened node `id`: its content outlives an unlink until release. */
  retain(id: number): void {
    this.#openCount.set(id, (this.#openCount.get(id) ?? 0) + 1);
  }

  release(id: number): void {
    const count = (this.#openCount.get(id) ?? 1) - 1;
    if (count > 0) {
      this.#openCount.set(id, count);
      return;
    }
    this.#openCount.delete(id);
    if (this.#closed) return;
    this.flush();
    const node = this.#nodes.get(id);
    if (node && node.nlink === 0) this.transaction(() => this.#dropNode(id));
  }

  /**
   * What the guest's fsync and fdatasync promise: everything committed so far
   * is on the stick when this returns. Commits run with synchronous=NORMAL
   * (a create or rename costs no fsync of its own); a checkpoint syncs the WAL
   * and then the database, so the entries named so far survive a pulled stick.
   * With a node, its content file's directory entry is synced as well.
   */
  async durable(node?: number): Promise<void> {
    if (this.#closed) return;
    this.flush();
    if (node !== undefined) await syncDirectory(join(this.dataPath(node), '..'));
    this.#db.exec('PRAGMA wal_checkpoint(PASSIVE)');
  }

  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    this.#db.close();
  }

  /** Remove the whole store (tests). */
  static async destroy(dir: string): Promise<void> {
    await rm(dir, { recursive: true, force: true });
  }
}
