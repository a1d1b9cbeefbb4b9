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
// Opened with the user's at-rest key (the session always does), both are
// sealed: rows keyed by keyed hashes with sealed values
// (sealed/sealed-rows.ts), contents in authenticated blocks
// (sealed/sealed-file.ts). Without a key (tests, benchmarks) they are plain
// (layer-rows.ts, content-store.ts). A plain store opened with a key is
// sealed in place once (sealed/seal-store.ts).
//
// Guest names never become host names, so nothing stored here can point
// anywhere on the host: confinement holds by construction. Entries are keyed
// by full guest path (case-sensitive, like the guest). Whiteouts hide a host
// file the guest deleted; an opaque directory hides all host children (rmdir
// then mkdir); a redirect says "this directory's host side is that other path
// in the same entry" (a host directory the guest renamed).
import { mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { StickTamperedError } from '../errors.ts';
import { syncDirectory } from '../primitives/atomic-replace.ts';
import { type ContentStore, contentPath, PlainContentStore } from './content-store.ts';
import { type LayerRows, nameOf, parentOf, PlainRows, type StoreEntry, type StoreNode } from './layer-rows.ts';
import { QuotaContentStore } from './quota-content-store.ts';
import { NODE_BYTES, type StoreQuota } from './store-quota.ts';
import { S_IFDIR, S_IFMT, S_IFREG } from '../ninep/backend.ts';
import { openSealedLayer } from './sealed/seal-store.ts';
import { SealedDataError } from './sealed/sealed-file.ts';
import { openStickDatabase } from '../primitives/stick-database.ts';
import type { DatabaseSync } from 'node:sqlite';

// The node and entry types are the rows' (layer-rows.ts), so the rows need not import the store.
export type { StoreEntry, StoreNode };

export type NewNode = Omit<StoreNode, 'id' | 'nlink'>;

/** What a node's rows count against the quota (store-quota.ts); its content is counted apart. */
function nodeBytes(node: Pick<StoreNode, 'target'>): number {
  return NODE_BYTES + (node.target === null ? 0 : Buffer.byteLength(node.target));
}

/** The meta row holding the content bytes a store with a quota counted when it last closed cleanly. */
const SAVED_CONTENT_BYTES = 'quota-content-bytes';

const hrBase = process.hrtime.bigint();
const epochBaseNs = BigInt(Date.now()) * 1_000_000n;

/** Now as seconds + nanoseconds (monotonic since start, anchored to the wall clock). */
export function nowTimespec(): { sec: number; nsec: number } {
  const ns = process.hrtime.bigint() - hrBase + epochBaseNs;
  return { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) };
}

export class LayerStore {
  readonly dir: string;
  /** Whether rows and contents are sealed (opened with a key). */
  readonly sealed: boolean;
  /** Where regular files' contents are. */
  readonly content: ContentStore;
  readonly #db: DatabaseSync;
  readonly #rows: LayerRows;
  readonly #onClose: () => void;
  /** The user's quota for files/ and upper/ together, when the session gives one. */
  readonly #quota: { quota: StoreQuota; content: QuotaContentStore } | undefined;
  /** Bytes of node rows counted against the quota (given back at close, with the content's). */
  #nodeBytes = 0;
  /** What the last clean close of a store with a quota counted of its content (read and removed at open). */
  #savedContentBytes: number | undefined;
  readonly #entries = new Map<string, StoreEntry>();
  readonly #children = new Map<string, Set<string>>();
  readonly #nodes = new Map<number, StoreNode>();
  /** Open handles per node: an unlinked node's content lives until the last close. */
  readonly #openCount = new Map<number, number>();
  /** Nodes whose times changed through writes, saved on flush. */
  readonly #dirty = new Set<number>();
  #closed = false;

  private constructor(
    dir: string,
    db: DatabaseSync,
    layer: { rows: LayerRows; content: ContentStore; sealed: boolean; close: () => void },
    quota: StoreQuota | undefined,
  ) {
    this.dir = dir;
    this.#db = db;
    this.#rows = layer.rows;
    this.#quota = quota ? { quota, content: new QuotaContentStore(layer.content, quota) } : undefined;
    this.content = this.#quota?.content ?? layer.content;
    // Through the quota's wrapper, which forwards it to the store that calls it.
    this.content.rowChanged = (id) => {
      if (this.#nodes.has(id)) this.#dirty.add(id);
    };
    this.sealed = layer.sealed;
    this.#onClose = layer.close;
    this.content.attachVersions?.({
      recorded: (id) => this.#nodes.get(id)?.contentVersion ?? 0,
      record: (id, version) => {
        const node = this.#nodes.get(id);
        if (!node || this.#closed) return;
        node.contentVersion = version;
        this.#saveNode(node);
      },
    });
  }

  /**
   * Open (creating if needed) the store in `dir`. With `key` (the user's
   * at-rest key, sealed/keys.ts; not kept) rows and contents are sealed.
   * With `quota`, what the store holds counts against it, and growth past
   * it fails with ENOSPC (store-quota.ts).
   */
  static async open(dir: string, options: { key?: Buffer; quota?: StoreQuota } = {}): Promise<LayerStore> {
    mkdirSync(join(dir, 'data'), { recursive: true });
    // One launcher at a time holds the stick, so the store is an 'exclusive' stick database (WAL).
    const db = openStickDatabase(join(dir, 'layer.sqlite'), { access: 'exclusive' });
    try {
      db.exec('PRAGMA foreign_keys=OFF;');
      db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);');
      const layer = options.key
        ? await openSealedLayer(dir, db, options.key)
        : (() => {
            const format = (db.prepare("SELECT value FROM meta WHERE key = 'format'").get() as { value: string } | undefined)?.value;
            if (format !== undefined && format !== 'pocketvm-layer-1') throw new Error(`layer store ${dir} is sealed: it opens only with its user's key`);
            db.prepare("INSERT OR IGNORE INTO meta(key, value) VALUES ('format', 'pocketvm-layer-1')").run();
            return { rows: new PlainRows(db), content: new PlainContentStore(dir), sealed: false, close: () => {} };
          })();
      const store = new LayerStore(dir, db, layer, options.quota);
      // Whoever opens the store next may change it: the saved figure holds for this open only.
      const saved = Number((db.prepare('SELECT value FROM meta WHERE key = ?').get(SAVED_CONTENT_BYTES) as { value: string } | undefined)?.value);
      store.#savedContentBytes = Number.isSafeInteger(saved) && saved >= 0 ? saved : undefined;
      db.prepare('DELETE FROM meta WHERE key = ?').run(SAVED_CONTENT_BYTES);
      try {
        store.#load();
      } catch (error) {
        store.#giveBackQuota();
        await layer.content.close();
        layer.close();
        // A row that does not authenticate was written by someone without the key.
        if (error instanceof SealedDataError)
          throw new StickTamperedError(`${join(dir, 'layer.sqlite')} was changed without its user's key: ${error.message}`, {
            hint: 'move the folder aside to start with an empty one',
          });
        throw error;
      }
      return store;
    } catch (error) {
      db.close();
      throw error;
    }
  }

  #load(): void {
    for (const node of this.#rows.loadNodes()) this.#nodes.set(node.id, node);
    this.#adoptAll();
    const referenced = new Map<number, number>();
    for (const entry of this.#rows.loadEntries()) {
      this.#remember(entry);
      if (entry.kind === 'node') referenced.set(entry.node, (referenced.get(entry.node) ?? 0) + 1);
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

  /** Counts the nodes already on the stick against the quota (at open). */
  #adoptAll(): void {
    if (!this.#quota) return;
    const files: number[] = [];
    for (const node of this.#nodes.values()) {
      this.#nodeBytes += nodeBytes(node);
      if ((node.mode & S_IFMT) === S_IFREG) files.push(node.id);
    }
    this.#quota.quota.adopt(this.#nodeBytes);
    this.#quota.content.adopt(files, this.#savedContentBytes);
  }

  /** Takes back from the quota all this store counted (at close: the next open counts again). */
  #giveBackQuota(): void {
    if (!this.#quota) return;
    this.#quota.quota.release(this.#nodeBytes + this.#quota.content.countedBytes());
    this.#nodeBytes = 0;
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
    this.#rows.begin?.();
    try {
      const result = fn();
      this.#rows.commit?.();
      this.#db.exec('COMMIT');
      return result;
    } catch (error) {
      this.#rows.rollback?.();
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
    let paths = this.#rows.childrenAfter(path, after, limit);
    if (paths === undefined) {
      // Sealed rows keep names unreadable to SQLite: page the names in memory.
      const names = [...(this.#children.get(path) ?? [])].filter((name) => name > after).sort();
      paths = names.slice(0, limit).map((name) => (path === '/' ? `/${name}` : `${path}/${name}`));
    }
    const out: StoreEntry[] = [];
    for (const p of paths) {
      const entry = this.#entries.get(p);
      if (entry) out.push(entry);
    }
    return out;
  }

  /** SQLite's plan for childrenAfter (tests: a plain store must walk the (parent, name) index, not sort). */
  explainChildrenAfter(): string {
    return this.#rows.explainChildrenAfter() ?? 'in memory (sealed names)';
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

  /** Where the content of a regular file node lives (sealed or not). */
  dataPath(id: number): string {
    return contentPath(this.dir, id);
  }

  /** A new node (not yet named by any entry); a regular file gets an empty content file. */
  async createNode(fields: NewNode, options: { unmetered?: boolean } = {}): Promise<StoreNode> {
    return this.createNodeSync(fields, options);
  }

  /**
   * createNode, synchronously: one INSERT and, for a regular file, one
   * create of its content file on the stick (microseconds), so a guest's
   * create is one transaction with its entry, not four trips through libuv.
   */
  createNodeSync(fields: NewNode, options: { unmetered?: boolean } = {}): StoreNode {
    // Over the quota: ENOSPC, before anything is written. `unmetered`: the
    // launcher's own node (a FIT entry's root at open), counted, never refused.
    const bytes = this.#quota ? nodeBytes(fields) : 0;
    if (options.unmetered) this.#quota?.quota.adopt(bytes);
    else this.#quota?.quota.charge(bytes);
    let node: StoreNode | undefined;
    try {
      // One transaction: the row is written after the content store has said what it holds (sealed: nothing yet).
      this.transaction(() => {
        const id = this.#rows.insertNode(fields);
        node = { ...fields, id, nlink: 0 };
        this.#nodes.set(id, node);
        if ((node.mode & S_IFMT) === S_IFREG) this.content.createSync(id);
      });
    } catch (error) {
      // Rolled back: neither the node nor its charge stays.
      if (node) this.#nodes.delete(node.id);
      this.#quota?.quota.release(bytes);
      throw error;
    }
    this.#nodeBytes += bytes;
    return node!;
  }

  #saveNode(node: StoreNode): void {
    this.#rows.saveNode(node);
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
      this.#rows.putEntry(entry);
      this.#remember(entry);
    });
  }

  /** Remove the entry at `path` (its node loses a link). */
  removeEntry(path: string): void {
    this.transaction(() => {
      const old = this.#entries.get(path);
      if (!old) return;
      this.#rows.deleteEntry(path);
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
        this.#rows.deleteEntry(entry.path);
        this.#forget(entry.path);
        this.#rows.putEntry(moved);
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
    const node = this.#nodes.get(id);
    if (node && this.#quota) {
      const bytes = nodeBytes(node);
      this.#quota.quota.release(bytes);
      this.#nodeBytes -= bytes;
    }
    this.#rows.deleteNode(id);
    this.#nodes.delete(id);
    this.#dirty.delete(id);
    this.content.remove(id);
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
    this.content.checkpointed?.();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // Content first: files synced at a bumped version record it in their rows.
    await this.content.close();
    this.flush();
    this.#closed = true;
    // The next open starts from this figure instead of reading every file's length.
    try {
      if (this.#quota)
        this.#db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run(SAVED_CONTENT_BYTES, String(this.#quota.content.countedBytes()));
    } catch {
      // The stick is gone or full: the next open reads every file's length instead.
    }
    this.#giveBackQuota();
    this.#db.close();
    this.#onClose();
  }

  /** Remove the whole store (tests). */
  static async destroy(dir: string): Promise<void> {
    await rm(dir, { recursive: true, force: true });
  }
}
