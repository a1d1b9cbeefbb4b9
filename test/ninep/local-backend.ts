// A passthrough NinepBackend over one host directory, confined to it
// (confined-fs.ts). Used by the tests and as the baseline the dyntable
// namespace is compared with; it has no copy-on-write: writes reach the host.

import { ConfinedRoot, hostOpenFlags, linuxMode } from '../../src/dyntable/confined-fs.ts';
import type { ConfinedFile, ConfinedRootOptions } from '../../src/dyntable/confined-fs.ts';
import { AT_REMOVEDIR, Errno, ErrnoError, OpenFlags, SetattrMask, direntTypeOfMode } from '../../src/ninep/backend.ts';
import type { NinepAttr, NinepBackend, NinepDirent, NinepHandle, NinepStatfs, Qid, SetattrRequest } from '../../src/ninep/backend.ts';

/**
 * Entries per readdir batch. A listing goes back to the guest in batches of
 * this many, and while the guest works through one (under TCG that takes
 * about as long as the host's lstat of the next), the next is already being
 * stat'ed: the two cores overlap instead of taking turns.
 */
export const LISTING_BATCH = 1024;
/** The first batch is small: the guest starts on it while the rest is still being stat'ed. */
export const FIRST_LISTING_BATCH = 256;

/** A NinepHandle over a ConfinedFile; directories list from a snapshot taken at offset 0. */
export class ConfinedHandle implements NinepHandle {
  readonly qid: Qid;
  readonly file: ConfinedFile;
  private snapshot: Array<{ name: string; type: number }> | undefined;
  /** The next batch's lstats, started when the previous batch was answered. */
  private prefetch: { offset: number; count: number; entries: Promise<NinepDirent[]> } | undefined;

  constructor(file: ConfinedFile) {
    this.file = file;
    this.qid = file.root.qidOf(file.stat);
  }

  read(target: Uint8Array, position: number): Promise<number> {
    return this.file.read(target, position);
  }

  write(data: Uint8Array, position: number): Promise<number> {
    return this.file.write(data, position);
  }

  async readdir(offset: number, maxEntries: number): Promise<NinepDirent[]> {
    if (!this.file.isDirectory) throw new ErrnoError(Errno.ENOTDIR, 'not a directory');
    if (offset === 0 || this.snapshot === undefined) {
      await this.settlePrefetch();
      this.snapshot = await this.file.root.listNames(this.file);
    }
    const snapshot = this.snapshot;
    // Cookies are index + 1 into the snapshot; attributes are fetched for the slice only.
    const count = Math.min(snapshot.length - offset, maxEntries, offset === 0 ? FIRST_LISTING_BATCH : LISTING_BATCH);
    if (count <= 0) return [];
    const ready = this.prefetch;
    this.prefetch = undefined;
    const entries = ready?.offset === offset && ready.count === count ? ready.entries : this.batch(snapshot, offset, count);
    const next = offset + count;
    if (next < snapshot.length) {
      // The guest works through this batch meanwhile (see LISTING_BATCH).
      const nextCount = Math.min(snapshot.length - next, LISTING_BATCH);
      const pending = this.batch(snapshot, next, nextCount);
      pending.catch(() => {}); // a failed prefetch is redone (and reported) by the call that needs it
      this.prefetch = { offset: next, count: nextCount, entries: pending };
    }
    const out = await entries;
    // Everything in the batch vanished: skip ahead rather than report the end early.
    if (out.length === 0 && next < snapshot.length) return this.readdir(next, maxEntries);
    return out;
  }

  /** Entries [offset, offset + count) of the snapshot with their qids; vanished ones left out. */
  private async batch(snapshot: ReadonlyArray<{ name: string }>, offset: number, count: number): Promise<NinepDirent[]> {
    const root = this.file.root;
    const slice = snapshot.slice(offset, offset + count);
    const stats = await root.statEntries(
      this.file,
      slice.map((e) => e.name),
    );
    const out: NinepDirent[] = [];
    for (let i = 0; i < slice.length; i++) {
      const st = stats[i];
      if (st === undefined) continue; // vanished since the listing
      out.push({ qid: root.qidOf(st), type: direntTypeOfMode(linuxMode(st)), name: slice[i]!.name, offset: offset + i + 1, attr: () => root.attrOf(st) });
    }
    return out;
  }

  /** A prefetch still running uses the directory's descriptor: it ends before the descriptor does. */
  private async settlePrefetch(): Promise<void> {
    const pending = this.prefetch;
    this.prefetch = undefined;
    await pending?.entries.catch(() => {});
  }

  async getattr(): Promise<NinepAttr> {
    return this.file.root.attrOf(await this.file.fstat());
  }

  fsync(datasync: boolean): Promise<void> {
    return this.file.sync(datasync);
  }

  async close(): Promise<void> {
    this.snapshot = undefined;
    await this.settlePrefetch();
    return this.file.close();
  }
}

/**
 * Apply a Tsetattr request through a ConfinedRoot: mode, owner, size, then
 * times (so an explicit mtime survives the truncate).
 */
export async function applySetattr(root: ConfinedRoot, path: string, r: SetattrRequest): Promise<void> {
  const v = r.valid;
  if (v & SetattrMask.MODE) await root.chmod(path, r.mode & 0o7777);
  if (v & (SetattrMask.UID | SetattrMask.GID)) {
    await root.chown(path, v & SetattrMask.UID ? r.uid : -1, v & SetattrMask.GID ? r.gid : -1);
  }
  if (v & SetattrMask.SIZE) await root.truncate(path, r.size);
  if (v & (SetattrMask.ATIME | SetattrMask.MTIME)) {
    const now = Date.now() / 1000;
    const atime = v & SetattrMask.ATIME ? (v & SetattrMask.ATIME_SET ? r.atimeSec + r.atimeNsec / 1e9 : now) : undefined;
    const mtime = v & SetattrMask.MTIME ? (v & SetattrMask.MTIME_SET ? r.mtimeSec + r.mtimeNsec / 1e9 : now) : undefined;
    await root.utimes(path, atime, mtime);
  }
}

export class LocalDirBackend implements NinepBackend {
  readonly root: ConfinedRoot;

  private constructor(root: ConfinedRoot) {
    this.root = root;
  }

  static async open(hostDir: string, options: ConfinedRootOptions = {}): Promise<LocalDirBackend> {
    return new LocalDirBackend(await ConfinedRoot.open(hostDir, options));
  }

  async getattr(path: string): Promise<NinepAttr> {
    return this.root.attrOf(await this.root.lstat(path));
  }

  setattr(path: string, request: SetattrRequest): Promise<void> {
    return applySetattr(this.root, path, request);
  }

  async open(path: string, flags: number): Promise<NinepHandle> {
    return new ConfinedHandle(await this.root.openFile(path, hostOpenFlags(flags & ~(OpenFlags.CREATE | OpenFlags.EXCL))));
  }

  async create(dirPath: string, name: string, flags: number, mode: number, _gid: number): Promise<NinepHandle> {
    const file = await this.root.createFile(dirPath, name, hostOpenFlags(flags & ~(OpenFlags.CREATE | OpenFlags.EXCL)), mode, (flags & OpenFlags.EXCL) !== 0);
    return new ConfinedHandle(file);
  }

  async mkdir(dirPath: string, name: string, mode: number, _gid: number): Promise<Qid> {
    return this.root.qidOf(await this.root.mkdir(dirPath, name, mode));
  }

  async mknod(dirPath: string, name: string, mode: number, _major: number, _minor: number, _gid: number): Promise<Qid> {
    return this.root.qidOf(await this.root.mknod(dirPath, name, mode));
  }

  async symlink(dirPath: string, name: string, target: string, _gid: number): Promise<Qid> {
    return this.root.qidOf(await this.root.symlink(dirPath, name, target));
  }

  readlink(path: string): Promise<string> {
    return this.root.readlink(path);
  }

  link(targetPath: string, dirPath: string, name: string): Promise<void> {
    return this.root.link(targetPath, dirPath, name);
  }

  unlink(dirPath: string, name: string, flags: number): Promise<void> {
    return this.root.remove(dirPath, name, (flags & AT_REMOVEDIR) !== 0);
  }

  rename(fromDir: string, fromName: string, toDir: string, toName: string): Promise<void> {
    return this.root.rename(fromDir, fromName, toDir, toName);
  }

  statfs(path: string): Promise<NinepStatfs> {
    return this.root.statfs(path);
  }

  // No extended attributes are passed through (Node has no xattr API); the
  // fid the guest asks about was already looked up, so no lstat here.
  async xattrGet(_path: string, _name: string): Promise<Uint8Array> {
    throw new ErrnoError(Errno.ENODATA, 'no extended attributes');
  }

  async xattrList(_path: string): Promise<string[]> {
    return [];
  }

  /** The host path a guest path maps to (for tests and diagnostics). */
  hostPath(path: string): string {
    return this.root.hostPath(path);
  }
}
