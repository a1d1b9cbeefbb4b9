// A layer store's content, sealed (sealed-file.ts): the same data/<xx>/<id>
// files, each a sealed file whose ID is bound to its node (keys.ts).
//
// Every handle on a node shares one SealedFile (its size lives in memory and
// its block read-modify-writes must not interleave). A file nobody holds
// stays open a little while (a create is followed by its open; `ls -l`
// stats many), up to IDLE_OPEN files; sizes of closed files are remembered,
// since only this store writes them.
//
// A new file gets no content file: it is unwritten (sealed-file.ts), which
// its node's sealed row records (the set shared with sealed-rows.ts), so a
// create costs the stick one row and no file, and stat and open of an empty
// file read nothing. Its first write creates the content file, takes it out
// of the set and asks LayerStore to save the row again (rowChanged). A
// content file found for an unwritten node (a crash after the first write,
// before the row was saved; or one put there) is never read: the row says
// the file is empty, and the first write replaces it.
import { lstatSync, rmSync } from 'node:fs';
import { type ContentStore, contentPath, Fanouts, type NodeContent } from '../content-store.ts';
import { ErrnoError } from '../ninep/backend.ts';
import type { StoreKeys } from './keys.ts';
import { SealedFile } from './sealed-file.ts';

const IDLE_OPEN = 64;
const SIZE_CACHE = 100_000;

interface Shared {
  file: Promise<SealedFile>;
  /** The file once open (statSync reads its size). */
  resolved?: SealedFile;
  refs: number;
}

const fsError = (error: unknown): never => {
  throw ErrnoError.fromNode(error);
};

class SealedContent implements NodeContent {
  readonly #file: SealedFile;
  readonly #release: () => Promise<void>;
  #closed = false;
  constructor(file: SealedFile, release: () => Promise<void>) {
    this.#file = file;
    this.#release = release;
  }
  read(target: Uint8Array, position: number): Promise<number> {
    return this.#file.read(target, position);
  }
  write(data: Uint8Array, position: number): Promise<number> {
    return this.#file.write(data, position).catch(fsError);
  }
  async size(): Promise<number> {
    return this.#file.size;
  }
  truncate(size: number): Promise<void> {
    return this.#file.truncate(size).catch(fsError);
  }
  sync(datasync: boolean): Promise<void> {
    return this.#file.sync(datasync).catch(fsError);
  }
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#release();
  }
}

export class SealedContentStore implements ContentStore {
  readonly dir: string;
  readonly #keys: StoreKeys;
  readonly #open = new Map<number, Shared>();
  /** Open files nobody holds, oldest first. */
  readonly #idle = new Set<number>();
  readonly #sizes = new Map<number, number>();
  readonly #fanouts = new Fanouts();
  /** Nodes whose content is unwritten (shared with SealedRows, which seals it into their rows). */
  readonly #unwritten: Set<number>;
  rowChanged?: (id: number) => void;

  constructor(dir: string, keys: StoreKeys, unwritten: Set<number> = new Set()) {
    this.dir = dir;
    this.#keys = keys;
    this.#unwritten = unwritten;
  }

  #keep(id: number, file: Promise<SealedFile>): Shared {
    const shared: Shared = { file, refs: 0 };
    this.#open.set(id, shared);
    file.then(
      (opened) => void (shared.resolved = opened),
      () => this.#open.get(id) === shared && this.#open.delete(id),
    );
    return shared;
  }

  /** Nothing on the stick: the node is unwritten until its first write (its row, written after this, says so). */
  createSync(id: number): void {
    this.#unwritten.add(id);
  }

  #acquire(id: number): Shared {
    let shared = this.#open.get(id);
    if (!shared) {
      const fileId = this.#keys.fileId(id);
      const path = contentPath(this.dir, id);
      if (this.#unwritten.has(id)) {
        const file = SealedFile.unwritten(path, this.#keys.fileKey(fileId), fileId, () => {
          this.#unwritten.delete(id);
          this.rowChanged?.(id);
        });
        this.#fanouts.ensure(path);
        shared = this.#keep(id, Promise.resolve(file));
        shared.resolved = file;
      } else {
        shared = this.#keep(id, SealedFile.open(path, this.#keys.fileKey(fileId), fileId));
      }
    }
    shared.refs++;
    this.#idle.delete(id);
    return shared;
  }

  async #releaseShared(id: number, shared: Shared): Promise<void> {
    shared.refs--;
    if (shared.refs === 0 && this.#open.get(id) === shared) this.#setIdle(id);
  }

  #setIdle(id: number): void {
    this.#idle.add(id);
    while (this.#idle.size > IDLE_OPEN) {
      const oldest = this.#idle.values().next().value as number;
      this.#idle.delete(oldest);
      void this.#closeShared(oldest);
    }
  }

  async #closeShared(id: number): Promise<void> {
    const shared = this.#open.get(id);
    if (!shared || shared.refs > 0) return;
    this.#open.delete(id);
    const file = await shared.file.catch(() => undefined);
    if (!file) return;
    if (this.#sizes.size >= SIZE_CACHE) this.#sizes.clear();
    this.#sizes.set(id, file.size);
    await file.close().catch(() => {});
  }

  async open(id: number): Promise<NodeContent> {
    const shared = this.#acquire(id);
    let file: SealedFile;
    try {
      file = await shared.file;
    } catch (error) {
      shared.refs--;
      return fsError(error);
    }
    return new SealedContent(file, () => this.#releaseShared(id, shared));
  }

  statSync(id: number): { size: number; blocks: number } {
    if (this.#unwritten.has(id)) return { size: 0, blocks: 0 };
    const shared = this.#open.get(id);
    // An open file's size is in memory (its header may lag by one write in flight).
    let size = shared ? shared.resolved?.size : this.#sizes.get(id);
    if (size === undefined) {
      const fileId = this.#keys.fileId(id);
      try {
        size = SealedFile.sizeSync(contentPath(this.dir, id), this.#keys.fileKey(fileId), fileId);
      } catch (error) {
        // No content file (a crash between the row and the file): empty, as a plain store says.
        if ((error as { code?: string }).code === 'ENOENT') return { size: 0, blocks: 0 };
        throw error;
      }
      if (!shared) {
        if (this.#sizes.size >= SIZE_CACHE) this.#sizes.clear();
        this.#sizes.set(id, size);
      }
    }
    // What the file takes on the stick (holes take nothing).
    const st = lstatSync(contentPath(this.dir, id), { throwIfNoEntry: false });
    return { size, blocks: st?.blocks ?? Math.ceil(size / 512) };
  }

  async truncate(id: number, size: number): Promise<void> {
    const content = await this.open(id);
    try {
      await content.truncate(size);
    } finally {
      await content.close();
    }
  }

  remove(id: number): void {
    const shared = this.#open.get(id);
    this.#open.delete(id);
    this.#idle.delete(id);
    this.#sizes.delete(id);
    this.#unwritten.delete(id);
    if (shared) void shared.file.then((file) => file.close()).catch(() => {});
    rmSync(contentPath(this.dir, id), { force: true });
  }

  async close(): Promise<void> {
    const all = [...this.#open.values()];
    this.#open.clear();
    this.#idle.clear();
    this.#sizes.clear();
    await Promise.all(all.map((shared) => shared.file.then((file) => file.close()).catch(() => {})));
  }
}
