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
//
// Content versions (rollback of a whole file): a file opens only at the
// version its node's row records, or one above it (bumped, not yet
// recorded). The first write after an open, or after an fsync, bumps the
// header's version (one 60-byte write); the new version is recorded in the
// row only once the file is synced at it (the guest's fsync, or when the file
// closes: one fdatasync per file changed, never per write), so the row is
// never ahead of what is on the stick. A recorded version is bumped again
// only once layer.sqlite's checkpoint has made the record durable
// (checkpointed()), or a pulled stick could leave the file two versions
// above its row. Files created since the store opened are not bumped (no
// earlier copy of them exists), so a create costs nothing more. An
// unwritten file needs no version until its content file exists: that is
// created with its header at the version its row records, or one above it
// (bumped as any other file's first write after an open, so a content file
// a crash left under an unwritten node never opens once the row says it is
// written).
import { lstatSync, rmSync } from 'node:fs';
import { type ContentStore, type ContentVersions, contentPath, Fanouts, type NodeContent } from '../content-store.ts';
import { ErrnoError } from '../../ninep/backend.ts';
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
  readonly #synced: (file: SealedFile) => void;
  #closed = false;
  constructor(file: SealedFile, release: () => Promise<void>, synced: (file: SealedFile) => void) {
    this.#file = file;
    this.#release = release;
    this.#synced = synced;
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
  async sync(datasync: boolean): Promise<void> {
    await this.#file.sync(datasync).catch(fsError);
    this.#synced(this.#file);
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
  #versions: ContentVersions = { recorded: () => 0, record: () => {} };
  /** Created since the store opened: never bumped. */
  readonly #fresh = new Set<number>();
  /** Versions recorded since layer.sqlite's last checkpoint: not bumped again until it. */
  readonly #undurable = new Set<number>();

  constructor(dir: string, keys: StoreKeys, unwritten: Set<number> = new Set()) {
    this.dir = dir;
    this.#keys = keys;
    this.#unwritten = unwritten;
  }

  attachVersions(versions: ContentVersions): void {
    this.#versions = versions;
  }

  /** The versions a file may be at: the recorded one, or one bumped since. */
  #expected(id: number): number[] {
    const recorded = this.#versions.recorded(id);
    return [recorded, recorded + 1];
  }

  /** A file synced at a bumped version: record it (bumped again after the next checkpoint). */
  #synced(id: number, file: SealedFile): void {
    // Still unwritten (no content file): nothing on the stick to record.
    if (file.unwrittenOnDisk || file.version <= this.#versions.recorded(id)) return;
    this.#versions.record(id, file.version);
    this.#undurable.add(id);
  }

  /** Before a file closes: a bumped version is synced, then recorded. */
  async #settle(id: number, file: SealedFile): Promise<void> {
    if (file.unwrittenOnDisk || file.version <= this.#versions.recorded(id)) return;
    await file.sync(true);
    this.#synced(id, file);
  }

  /** layer.sqlite is checkpointed: the versions recorded so far are durable, and their open files bump at the next change. */
  checkpointed(): void {
    for (const id of this.#undurable) {
      const file = this.#open.get(id)?.resolved;
      if (file && file.version === this.#versions.recorded(id)) file.armBump();
    }
    this.#undurable.clear();
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
    if (this.#fresh.size >= SIZE_CACHE) this.#fresh.clear();
    this.#fresh.add(id);
  }

  #acquire(id: number): Shared {
    let shared = this.#open.get(id);
    if (!shared) {
      const fileId = this.#keys.fileId(id);
      const path = contentPath(this.dir, id);
      const expected = this.#expected(id);
      // Bumped at its first change unless created since the store opened (no earlier copy) or its record is not yet durable.
      const bumps = () => !this.#fresh.has(id) && !this.#undurable.has(id);
      if (this.#unwritten.has(id)) {
        const file = SealedFile.unwritten(
          path,
          this.#keys.fileKey(fileId),
          fileId,
          () => {
            this.#unwritten.delete(id);
            this.rowChanged?.(id);
          },
          expected[0]!,
        );
        if (bumps()) file.armBump();
        this.#fanouts.ensure(path);
        shared = this.#keep(id, Promise.resolve(file));
        shared.resolved = file;
      } else {
        const opening = SealedFile.open(path, this.#keys.fileKey(fileId), fileId, expected).then((file) => {
          if (file.version === expected[0] && bumps()) file.armBump();
          return file;
        });
        shared = this.#keep(id, opening);
      }
    }
    shared.refs++;
    this.#idle.delete(id);
    return shared;
  }

  async #releaseShared(id: number, shared: Shared): Promise<void> {
    shared.refs--;
    if (shared.refs === 0 && this.#open.get(id) === shared) {
      // Kept open a while, but the plaintext its reads kept is zeroed now.
      void shared.resolved?.forgetOpened();
      this.#setIdle(id);
    }
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
    await this.#settle(id, file).catch(() => {});
    // A write behind that failed put the size back (sealed-file.ts).
    if (this.#sizes.has(id)) this.#sizes.set(id, file.size);
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
    return new SealedContent(
      file,
      () => this.#releaseShared(id, shared),
      (synced) => this.#synced(id, synced),
    );
  }

  statSync(id: number): { size: number; blocks: number } {
    if (this.#unwritten.has(id)) return { size: 0, blocks: 0 };
    const shared = this.#open.get(id);
    // An open file's size is in memory (its header may lag by one write in flight).
    let size = shared ? shared.resolved?.size : this.#sizes.get(id);
    if (size === undefined) {
      const fileId = this.#keys.fileId(id);
      try {
        size = SealedFile.sizeSync(contentPath(this.dir, id), this.#keys.fileKey(fileId), fileId, this.#expected(id));
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
    const all = [...this.#open.entries()];
    this.#open.clear();
    this.#idle.clear();
    this.#sizes.clear();
    await Promise.all(
      all.map(([id, shared]) =>
        shared.file
          .then(async (file) => {
            await this.#settle(id, file).catch(() => {});
            await file.close();
          })
          .catch(() => {}),
      ),
    );
  }
}
