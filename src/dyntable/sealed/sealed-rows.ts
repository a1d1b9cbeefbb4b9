// layer.sqlite with nothing readable in it: rows are keyed by keyed hashes
// and their values sealed (row-seal.ts).
//
//   nodes   (id, value)            value = sealed {mode, uid, gid, ..., target, qid, unwritten?}
//   entries (key, parent, value)   key = hash(path), parent = hash(parent path),
//                                  value = sealed {path, node, opaque, redirect}
//
// Keyed hashes rather than sealing the whole database as one blob: every
// change stays one small row write (a create of 10,000 files must not
// rewrite a growing database each time), and rows remain findable by path
// and by parent (the index) without the path being readable. What the file
// still shows: how many nodes and entries there are and how entries group
// under parents (the tree's shape), and values' lengths to 64 bytes.
import type { DatabaseSync } from 'node:sqlite';
import { type LayerRows, type NewNodeFields, parentOf, Statements, type StoreEntry, type StoreNode } from '../layer-rows.ts';
import type { StoreKeys } from './keys.ts';
import { openRow, sealRow } from './row-seal.ts';

export const SEALED_SCHEMA = `
CREATE TABLE IF NOT EXISTS sealed_nodes (id INTEGER PRIMARY KEY AUTOINCREMENT, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sealed_entries (key BLOB PRIMARY KEY, parent BLOB NOT NULL, value BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS sealed_entries_parent ON sealed_entries(parent);
`;

/** unwritten: a regular file never written, which has no content file (sealed-file.ts); absent in rows of earlier versions. */
type NodeValue = Omit<StoreNode, 'id' | 'qid'> & { qid: string | null; unwritten?: true };
type EntryValue = { path: string; node: number | null; opaque: boolean; redirect: string | null };

export class SealedRows implements LayerRows {
  readonly #db: DatabaseSync;
  readonly #stmt: Statements;
  readonly #keys: StoreKeys;
  /** Nodes whose content is unwritten: shared with the content store, which takes a node out at its first write. */
  readonly #unwritten: Set<number>;
  /** Keyed hashes of recent paths: a folder's children all hash its path as their parent. */
  readonly #hashes = new Map<string, Buffer>();
  /** Node writes held in a transaction (LayerRows.begin): sealed and written once, at commit. */
  #held: Map<number, { node: StoreNode; inserted: boolean }> | undefined;
  #next: number | undefined;

  constructor(db: DatabaseSync, keys: StoreKeys, unwritten: Set<number> = new Set()) {
    this.#db = db;
    this.#keys = keys;
    this.#unwritten = unwritten;
    this.#stmt = new Statements(db);
    db.exec(SEALED_SCHEMA);
  }

  #sealNode(id: number, node: Omit<StoreNode, 'id'>): Buffer {
    const { qid, ...rest } = node as StoreNode;
    const value: NodeValue & { id?: number } = { ...rest, qid: qid === null ? null : qid.toString() };
    delete value.id;
    if (this.#unwritten.has(id)) value.unwritten = true;
    return sealRow(this.#keys.rows, `node:${id}`, value);
  }

  loadNodes(): StoreNode[] {
    const rows = this.#db.prepare('SELECT id, value FROM sealed_nodes').all() as unknown as { id: number; value: Uint8Array }[];
    return rows.map((row) => {
      const { unwritten, ...value } = openRow<NodeValue>(this.#keys.rows, `node:${row.id}`, row.value);
      if (unwritten) this.#unwritten.add(row.id);
      return { ...value, id: row.id, qid: value.qid === null ? null : BigInt(value.qid) };
    });
  }

  loadEntries(): StoreEntry[] {
    const rows = this.#db.prepare('SELECT key, value FROM sealed_entries').all() as unknown as { key: Uint8Array; value: Uint8Array }[];
    return rows.map((row) => {
      const value = openRow<EntryValue>(this.#keys.rows, `entry:${Buffer.from(row.key).toString('hex')}`, row.value);
      return value.node === null
        ? { path: value.path, kind: 'whiteout' }
        : { path: value.path, kind: 'node', node: value.node, opaque: value.opaque, redirect: value.redirect };
    });
  }

  /** The next node id: AUTOINCREMENT's, kept here so a new node is sealed (its id is associated data) and inserted in one statement. */
  #nextId(): number {
    if (this.#next === undefined) {
      const seq = this.#db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'sealed_nodes'").get() as { seq: number } | undefined;
      const max = this.#db.prepare('SELECT max(id) AS id FROM sealed_nodes').get() as { id: number | null };
      this.#next = Math.max(seq?.seq ?? 0, max.id ?? 0) + 1;
    }
    return this.#next++;
  }

  insertNode(fields: NewNodeFields): number {
    const id = this.#nextId();
    const node = { ...fields, id, nlink: 0 };
    if (this.#held) this.#held.set(id, { node, inserted: false });
    else this.#writeNode(node, false);
    return id;
  }

  /** A node with a known id (moving a plain store's rows over). */
  insertNodeWithId(node: StoreNode): void {
    this.#writeNode(node, false);
  }

  saveNode(node: StoreNode): void {
    const held = this.#held?.get(node.id);
    if (held) held.node = node;
    else if (this.#held) this.#held.set(node.id, { node, inserted: true });
    else this.#writeNode(node, true);
  }

  #writeNode(node: StoreNode, inserted: boolean): void {
    if (inserted) this.#stmt.get('UPDATE sealed_nodes SET value = ? WHERE id = ?').run(this.#sealNode(node.id, node), node.id);
    else this.#stmt.get('INSERT INTO sealed_nodes (id, value) VALUES (?, ?)').run(node.id, this.#sealNode(node.id, node));
  }

  begin(): void {
    this.#held = new Map();
  }

  commit(): void {
    const held = this.#held;
    this.#held = undefined;
    // In the order first held: each node sealed once, in its state at commit.
    for (const { node, inserted } of held?.values() ?? []) this.#writeNode(node, inserted);
  }

  rollback(): void {
    this.#held = undefined;
  }

  deleteNode(id: number): void {
    this.#held?.delete(id);
    this.#stmt.get('DELETE FROM sealed_nodes WHERE id = ?').run(id);
  }

  #pathHash(path: string): Buffer {
    let hash = this.#hashes.get(path);
    if (!hash) {
      hash = this.#keys.hash('path', path);
      if (this.#hashes.size >= 4096) this.#hashes.clear();
      this.#hashes.set(path, hash);
    }
    return hash;
  }

  putEntry(entry: StoreEntry): void {
    const key = this.#pathHash(entry.path);
    const value: EntryValue =
      entry.kind === 'node'
        ? { path: entry.path, node: entry.node, opaque: entry.opaque, redirect: entry.redirect }
        : { path: entry.path, node: null, opaque: false, redirect: null };
    this.#stmt
      .get('INSERT OR REPLACE INTO sealed_entries (key, parent, value) VALUES (?, ?, ?)')
      .run(key, this.#pathHash(parentOf(entry.path)), sealRow(this.#keys.rows, `entry:${key.toString('hex')}`, value));
  }

  /** Names are sealed: no index can order them (LayerStore pages its names in memory). */
  childrenAfter(): undefined {
    return undefined;
  }

  explainChildrenAfter(): undefined {
    return undefined;
  }

  deleteEntry(path: string): void {
    this.#stmt.get('DELETE FROM sealed_entries WHERE key = ?').run(this.#pathHash(path));
  }
}
