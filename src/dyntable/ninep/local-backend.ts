// A passthrough NinepBackend over one host directory, confined to it
// (confined-fs.ts). Used by the tests and as the baseline the dyntable
// namespace is compared with; it has no copy-on-write: writes reach the host.

import { ConfinedRoot, hostOpenFlags, linuxMode } from './confined-fs.ts';
import type { ConfinedFile, ConfinedRootOptions } from './confined-fs.ts';
import { AT_REMOVEDIR, Errno, ErrnoError, OpenFlags, SetattrMask, direntTypeOfMode } from './backend.ts';
import type {
  NinepAttr,
  NinepBackend,
  NinepDirent,
  NinepHandle,
  NinepStatfs,
  Qid,
  SetattrRequest,
} from './backend.ts';

/** A NinepHandle over a ConfinedFile; directories list from a snapshot taken at offset 0. */
export class ConfinedHandle implements NinepHandle {
  readonly qid: Qid;
  readonly file: ConfinedFile;
  private snapshot: Array<{ name: string; type: number }> | undefined;

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
    const root = this.file.root;
    if (offset === 0 || this.snapshot === undefined) this.snapshot = await root.listNames(this.file);
    // Cookies are index + 1 into the snapshot; attributes are fetched for the slice only.
    const slice = this.snapshot.slice(offset, offset + maxEntries);
    const stats = await root.statEntries(this.file, slice.map((e) => e.name));
    const out: NinepDirent[] = [];
    for (let i = 0; i < slice.length; i++) {
      const st = stats[i];
      if (st === undefined) continue; // vanished since the listing
      out.push({ qid: root.qidOf(st), type: direntTypeOfMode(linuxMode(st)), name: slice[i]!.name, offset: offset + i + 1, attr: () => root.attrOf(st) });
    }
    // Everything in the slice vanished: skip ahead rather than report the end early.
    if (out.length === 0 && slice.length > 0 && offset + slice.length < this.snapshot.length) {
      return this.readdir(offset + slice.length, maxEntries);
    }
    return out;
  }

  async getattr(): Promise<NinepAttr> {
    return this.file.root.attrOf(await this.file.fstat());
  }

  fsync(datasync: boolean): Promise<void> {
    return this.file.sync(datasync);
  }

  close(): Promise<void> {
    this.snapshot = undefined;
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
    const atime =
      v & SetattrMask.ATIME ? (v & SetattrMask.ATIME_SET ? r.atimeSec + r.atimeNsec / 1e9 : now) : undefined;
    const mtime =
      v & SetattrMask.MTIME ? (v & SetattrMask.MTIME_SET ? r.mtimeSec + r.mtimeNsec / 1e9 : now) : undefined;
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
    const file = await this.root.createFile(
      dirPath,
      name,
      hostOpenFlags(flags & ~(OpenFlags.CREATE | OpenFlags.EXCL)),
      mode,
      (flags & OpenFlags.EXCL) !== 0,
    );
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
