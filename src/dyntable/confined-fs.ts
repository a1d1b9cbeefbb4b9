// File-system primitives confined to one host directory ("root"), for the
// 9P backends. The guest names files by guest paths ('/a/b'); every primitive
// here maps them below the root and guarantees the host call cannot touch
// anything outside it:
//
// - Components are validated (no '', '.', '..', separators, and on Windows no
//   names the host would reinterpret), so the mapping is purely lexical.
// - Every intermediate component is lstat'ed and must be a real directory,
//   never a symlink; final components are never followed (lstat, lutimes,
//   lchown, O_NOFOLLOW, rename/unlink/link semantics).
// - Check-then-use races: the only way the guest can turn a verified
//   directory into something else is rename or remove, which go through
//   here. Those take an exclusive lock; every other primitive holds a shared
//   lock across its check and its use. The lock is process-wide, so roots
//   that overlap on the host are covered too.
// - Opened files are verified after the open: on Linux the realpath of
//   /proc/self/fd/N must lie inside the root, and everywhere the opened
//   file's dev/ino must be the one the check saw.
// - Hard links can only join two names that are both inside the root.
//
// Errors are ErrnoError (Linux errno) so backends can pass them through.

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import type { BigIntStats, Dirent } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { isMainThread } from 'node:worker_threads';
import { platformOf } from '../platform/current.ts';
import {
  Errno,
  ErrnoError,
  OpenFlags,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  childPath,
  isValidName,
  parentPath,
  qidTypeOfMode,
} from '../ninep/backend.ts';
import type { NinepAttr, NinepStatfs, Qid } from '../ninep/backend.ts';
import { HostFsPool } from './host-fs-pool.ts';

const isWindows = platformOf()?.windowsFileSystem === true;
const procFd = platformOf()?.procSelfFd === true && fs.existsSync('/proc/self/fd');
const C = fs.constants;
const O_NOFOLLOW = C.O_NOFOLLOW ?? 0;
const O_DIRECTORY = C.O_DIRECTORY ?? 0;
const O_NONBLOCK = C.O_NONBLOCK ?? 0;

// ---------------------------------------------------------------------------
// Process-wide reader/writer lock and the directory-verification cache.

class RwLock {
  private readers = 0;
  private writer = false;
  private readonly waitingWriters: Array<() => void> = [];
  private waitingReaders: Array<() => void> = [];

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writer || this.waitingWriters.length > 0) {
      await new Promise<void>((resolve) => this.waitingReaders.push(resolve));
    } else {
      this.readers++;
    }
    try {
      return await fn();
    } finally {
      this.readers--;
      this.release();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writer || this.readers > 0) {
      await new Promise<void>((resolve) => this.waitingWriters.push(resolve));
    } else {
      this.writer = true;
    }
    try {
      return await fn();
    } finally {
      this.writer = false;
      this.release();
    }
  }

  private release(): void {
    if (this.writer || this.readers > 0) return;
    const next = this.waitingWriters.shift();
    if (next) {
      this.writer = true;
      next();
      return;
    }
    const readers = this.waitingReaders;
    this.waitingReaders = [];
    this.readers += readers.length;
    for (const r of readers) r();
  }
}

const treeLock = new RwLock();
/** Bumped by every rename/rmdir anywhere: invalidates all verified-directory caches. */
let treeGeneration = 0;
/** How long a verified directory is trusted against changes made by the host itself. */
const VERIFIED_TTL_MS = 1000;

// ---------------------------------------------------------------------------
// Mapping helpers.

const windowsReserved = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$/i;

function checkHostName(name: string): void {
  if (!isValidName(name)) throw new ErrnoError(Errno.EINVAL, `invalid name ${JSON.stringify(name)}`);
  if (Buffer.byteLength(name) > 255) throw new ErrnoError(Errno.ENAMETOOLONG, 'name too long');
  if (isWindows && (/[\\:*?"<>|\x00-\x1f]/.test(name) || /[. ]$/.test(name) || windowsReserved.test(name))) {
    throw new ErrnoError(Errno.EINVAL, `name not representable on this host: ${JSON.stringify(name)}`);
  }
}

/** Split a normalised guest path into validated components. */
export function guestComponents(guestPath: string): string[] {
  if (guestPath === '/') return [];
  if (!guestPath.startsWith('/')) throw new ErrnoError(Errno.EINVAL, `not an absolute guest path: ${guestPath}`);
  const parts = guestPath.slice(1).split('/');
  for (const p of parts) checkHostName(p);
  return parts;
}

/** Linux-style mode from a host stat (Windows reports DOS-ish modes; keep type + permission bits). */
export function linuxMode(st: BigIntStats): number {
  return Number(st.mode) & 0o177777;
}

/** Split a bigint nanosecond timestamp into [sec, nsec] numbers. */
function splitNs(ns: bigint): [number, number] {
  let sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    sec -= 1n;
  }
  return [Number(sec), Number(nsec)];
}

/** Map host open flags from 9P2000.L (Linux) flags. Drops flags that make no sense on a share. */
export function hostOpenFlags(flags: number): number {
  let out: number;
  switch (flags & OpenFlags.ACCMODE) {
    case OpenFlags.WRONLY:
      out = C.O_WRONLY;
      break;
    case OpenFlags.RDWR:
      out = C.O_RDWR;
      break;
    default:
      out = C.O_RDONLY;
  }
  if (flags & OpenFlags.TRUNC) out |= C.O_TRUNC;
  if (flags & OpenFlags.APPEND) out |= C.O_APPEND;
  if (flags & OpenFlags.EXCL) out |= C.O_EXCL;
  if (flags & OpenFlags.CREATE) out |= C.O_CREAT;
  if (flags & OpenFlags.DIRECTORY) out |= O_DIRECTORY;
  if (flags & OpenFlags.DSYNC) out |= C.O_DSYNC ?? 0;
  if (flags & OpenFlags.SYNC) out |= C.O_SYNC ?? 0;
  // DIRECT (alignment rules), NOATIME (EPERM unless owner), NONBLOCK, CLOEXEC,
  // NOCTTY, FASYNC, LARGEFILE: meaningless or harmful on the host side.
  return out | O_NOFOLLOW;
}

export interface ConfinedRootOptions {
  /**
   * Ignore EPERM from chown (the host user usually cannot give files away;
   * QEMU's security_model=none does the same). Default true.
   */
  ignoreOwnershipErrors?: boolean;
  /** Strip setuid/setgid from modes written to the host. Default true. */
  stripSetid?: boolean;
}

/**
 * One host directory, and the confined primitives over it. All methods take
 * guest paths (relative to the root) and throw ErrnoError.
 */
export class ConfinedRoot {
  /** The root's realpath on the host. */
  readonly root: string;
  readonly rootDev: bigint;
  private readonly ignoreOwnershipErrors: boolean;
  private readonly setidMask: number;
  /** guest dir path → [generation, expiry] of its last successful verification. */
  private readonly verified = new Map<string, number>();
  private verifiedGeneration = treeGeneration;
  /** Where calls for paths on remote and FUSE mounts go (host-fs-pool.ts). */
  readonly pool = HostFsPool.shared();

  private constructor(root: string, rootDev: bigint, options: ConfinedRootOptions) {
    this.root = root;
    this.rootDev = rootDev;
    this.ignoreOwnershipErrors = options.ignoreOwnershipErrors ?? true;
    this.setidMask = options.stripSetid === false ? 0o7777 : 0o1777;
  }

  /** Open a root: the directory must exist; symlinks in its own path are resolved once, here. */
  static async open(hostDir: string, options: ConfinedRootOptions = {}): Promise<ConfinedRoot> {
    // Whether it is on a mount that may hang is decided from the table as it is now.
    HostFsPool.shared().refreshMounts();
    let real: string;
    try {
      real = await fsp.realpath(hostDir);
    } catch (err) {
      throw ErrnoError.fromNode(err);
    }
    const st = await fsp.stat(real, { bigint: true }).catch((err: unknown) => {
      throw ErrnoError.fromNode(err);
    });
    if (!st.isDirectory()) throw new ErrnoError(Errno.ENOTDIR, `${hostDir} is not a directory`);
    return new ConfinedRoot(real, st.dev, options);
  }

  /** The host path for a guest path (validated, lexical; no checks on the host). */
  hostPath(guestPath: string): string {
    const parts = guestComponents(guestPath);
    return parts.length === 0 ? this.root : path.join(this.root, ...parts);
  }

  /** Run fn holding the shared lock (no guest rename/remove can interleave). */
  shared<T>(fn: () => Promise<T>): Promise<T> {
    return treeLock.shared(fn);
  }

  /** Run fn holding the exclusive lock; invalidates verified directories afterwards. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return treeLock.exclusive(async () => {
      try {
        return await fn();
      } finally {
        treeGeneration++;
      }
    });
  }

  /**
   * Verify that `guestDir` and every directory above it is a real directory
   * (not a symlink). Call with the lock held.
   */
  async verifyDir(guestDir: string): Promise<void> {
    if (guestDir === '/') return;
    if (this.verifiedGeneration !== treeGeneration) {
      this.verified.clear();
      this.verifiedGeneration = treeGeneration;
    }
    const now = Date.now();
    const cached = this.verified.get(guestDir);
    if (cached !== undefined && cached > now) return;
    const parts = guestComponents(guestDir);
    let guest = '';
    let host = this.root;
    for (const part of parts) {
      guest += '/' + part;
      host = path.join(host, part);
      const hit = this.verified.get(guest);
      if (hit !== undefined && hit > now) continue;
      let st: fs.Stats | fs.BigIntStats;
      try {
        st = this.pool.isSlow(host) ? await this.pool.lstat(host) : fs.lstatSync(host); // synchronous: see lstatLocked
      } catch (err) {
        throw ErrnoError.fromNode(err);
      }
      if (st.isSymbolicLink()) throw new ErrnoError(Errno.ELOOP, `${guest} is a symlink`);
      if (!st.isDirectory()) throw new ErrnoError(Errno.ENOTDIR, `${guest} is not a directory`);
      this.verified.set(guest, now + VERIFIED_TTL_MS);
    }
    if (this.verified.size > 10_000) this.verified.clear();
  }

  /**
   * lstat with the parent chain verified. Call with the lock held.
   * Synchronous on purpose: every walk and getattr of the guest waits on it,
   * and a metadata lookup on the host's own disk takes a few microseconds,
   * while a trip through libuv's thread pool costs tens (a third of a 9P
   * round trip under TCG).
   */
  async lstatLocked(guestPath: string): Promise<BigIntStats> {
    await this.verifyDir(parentPath(guestPath));
    const host = this.hostPath(guestPath);
    try {
      // A path on a mount that may hang goes to the pool, with a deadline.
      if (this.pool.isSlow(host)) return await this.pool.lstat(host);
      return fs.lstatSync(host, { bigint: true });
    } catch (err) {
      throw ErrnoError.fromNode(err);
    }
  }

  /** lstat (never follows the final component). */
  lstat(guestPath: string): Promise<BigIntStats> {
    return this.shared(() => this.lstatLocked(guestPath));
  }

  /**
   * lstat, or undefined when the name is not there: a lookup that misses
   * (every create looks first) builds no error object, whose stack trace
   * costs more than the lstat itself.
   */
  lstatIfExists(guestPath: string): Promise<BigIntStats | undefined> {
    return this.shared(async () => {
      await this.verifyDir(parentPath(guestPath));
      const host = this.hostPath(guestPath);
      try {
        if (this.pool.isSlow(host)) return await this.pool.lstat(host);
        return fs.lstatSync(host, { bigint: true, throwIfNoEntry: false });
      } catch (err) {
        const e = ErrnoError.fromNode(err);
        if (e.errno === Errno.ENOENT) return undefined;
        throw e;
      }
    });
  }

  /** The unique qid path for a host file: its inode, mixed with the device when it is not the root's. */
  qidPath(st: BigIntStats): bigint {
    if (st.dev === this.rootDev) return st.ino;
    return BigInt.asUintN(64, st.ino ^ (st.dev * 0x9e3779b97f4a7c15n));
  }

  qidOf(st: BigIntStats): Qid {
    const mode = linuxMode(st);
    return {
      type: qidTypeOfMode(mode),
      version: Number(BigInt.asUintN(32, (st.mtimeNs / 1_000_000_000n) ^ (st.size << 8n) ^ (st.mtimeNs % 1_000_000_000n))),
      path: this.qidPath(st),
    };
  }

  attrOf(st: BigIntStats): NinepAttr {
    const [atimeSec, atimeNsec] = splitNs(st.atimeNs);
    const [mtimeSec, mtimeNsec] = splitNs(st.mtimeNs);
    const [ctimeSec, ctimeNsec] = splitNs(st.ctimeNs);
    const [btimeSec, btimeNsec] = splitNs(st.birthtimeNs);
    return {
      qid: this.qidOf(st),
      mode: linuxMode(st),
      uid: Number(st.uid),
      gid: Number(st.gid),
      nlink: Number(st.nlink),
      rdev: Number(st.rdev),
      size: Number(st.size),
      blksize: Number(st.blksize) || 4096,
      blocks: Number(st.blocks),
      atimeSec,
      atimeNsec,
      mtimeSec,
      mtimeNsec,
      ctimeSec,
      ctimeNsec,
      btimeSec,
      btimeNsec,
    };
  }

  /** Verify an opened descriptor is the file the check saw, inside the root. */
  private async verifyOpened(fh: FileHandle | number, guestPath: string, expect: BigIntStats | undefined): Promise<BigIntStats> {
    const fd = typeof fh === 'number' ? fh : fh.fd;
    if (procFd) {
      let real: string;
      try {
        // procfs names the descriptor's path without asking its file system.
        real = fs.readlinkSync(`/proc/self/fd/${fd}`);
      } catch (err) {
        throw ErrnoError.fromNode(err);
      }
      if (real !== this.root && !real.startsWith(this.root.endsWith(path.sep) ? this.root : this.root + path.sep)) {
        throw new ErrnoError(Errno.EACCES, `${guestPath} resolved outside its root`);
      }
    }
    const st = typeof fh === 'number' ? await this.pool.fstat(fh, this.hostPath(guestPath)) : await fh.stat({ bigint: true });
    if (expect !== undefined && (st.ino !== expect.ino || st.dev !== expect.dev)) {
      throw new ErrnoError(Errno.EAGAIN, `${guestPath} changed while it was opened`);
    }
    return st;
  }

  /**
   * Open an existing file or directory with host flags (hostOpenFlags).
   * Symlinks → ELOOP; devices and sockets refused; FIFOs opened non-blocking
   * so a guest cannot park a host thread.
   */
  async openFile(guestPath: string, hostFlags: number): Promise<ConfinedFile> {
    return this.shared(async () => {
      const st = await this.lstatLocked(guestPath);
      const type = Number(st.mode) & S_IFMT;
      const acc = hostFlags & (C.O_WRONLY | C.O_RDWR);
      if (type === S_IFLNK) throw new ErrnoError(Errno.ELOOP, `${guestPath} is a symlink`);
      if (type === S_IFDIR) {
        if (acc !== 0 || hostFlags & C.O_TRUNC) throw new ErrnoError(Errno.EISDIR, `${guestPath} is a directory`);
        return this.openDirLocked(guestPath, st);
      }
      if (O_DIRECTORY && hostFlags & O_DIRECTORY) throw new ErrnoError(Errno.ENOTDIR, `${guestPath} is not a directory`);
      let flags = hostFlags | O_NOFOLLOW;
      if (type === S_IFIFO) flags |= O_NONBLOCK;
      else if (type !== S_IFREG) throw new ErrnoError(Errno.EACCES, `${guestPath}: special files are not served`);
      return this.openVerified(guestPath, flags, st);
    });
  }

  /**
   * open(2) of a path the caller checked (as `st`), then verified to be the
   * file the check saw; on a pool worker when its mount is slow.
   */
  private async openVerified(guestPath: string, flags: number, st: BigIntStats): Promise<ConfinedFile> {
    if (this.pool.isSlow(this.hostPath(guestPath))) return this.openPooled(guestPath, flags, st);
    let fh: FileHandle;
    try {
      fh = await fsp.open(this.hostPath(guestPath), flags);
    } catch (err) {
      throw ErrnoError.fromNode(err);
    }
    try {
      const opened = await this.verifyOpened(fh, guestPath, st);
      return new ConfinedFile(this, guestPath, fh, opened);
    } catch (err) {
      await fh.close().catch(() => {});
      throw ErrnoError.fromNode(err);
    }
  }

  /** open(2) on a pool worker: the file's descriptor is served by the pool from then on. */
  private async openPooled(guestPath: string, flags: number, st: BigIntStats): Promise<ConfinedFile> {
    const fd = await this.pool.open(this.hostPath(guestPath), flags);
    try {
      const opened = await this.verifyOpened(fd, guestPath, st);
      return new ConfinedFile(this, guestPath, undefined, opened, fd);
    } catch (err) {
      await this.pool.close(fd, this.hostPath(guestPath)).catch(() => {});
      throw ErrnoError.fromNode(err);
    }
  }

  private async openDirLocked(guestPath: string, st: BigIntStats): Promise<ConfinedFile> {
    await this.verifyDir(guestPath);
    if (isWindows) return new ConfinedFile(this, guestPath, undefined, st);
    return this.openVerified(guestPath, C.O_RDONLY | O_DIRECTORY | O_NOFOLLOW, st);
  }

  /**
   * Create and open a regular file. With `exclusive` an existing name is
   * EEXIST; without, an existing regular file is opened instead (never a
   * symlink). The mode is applied exactly (no host umask), minus setid bits.
   */
  async createFile(guestDir: string, name: string, hostFlags: number, mode: number, exclusive: boolean): Promise<ConfinedFile> {
    checkHostName(name);
    const guestPath = childPath(guestDir, name);
    const created = await this.shared(async () => {
      await this.verifyDir(guestDir);
      let fh: FileHandle;
      try {
        fh = await fsp.open(this.hostPath(guestPath), hostFlags | C.O_CREAT | C.O_EXCL | O_NOFOLLOW, mode & 0o777);
      } catch (err) {
        const e = ErrnoError.fromNode(err);
        if (e.errno === Errno.EEXIST && !exclusive) return undefined;
        throw e;
      }
      try {
        const opened = await this.verifyOpened(fh, guestPath, undefined);
        if (!isWindows) await fh.chmod(mode & this.setidMask).catch(() => {});
        return new ConfinedFile(this, guestPath, fh, await fh.stat({ bigint: true }).catch(() => opened));
      } catch (err) {
        await fh.close().catch(() => {});
        throw ErrnoError.fromNode(err);
      }
    });
    return created ?? this.openFile(guestPath, hostFlags & ~(C.O_CREAT | C.O_EXCL));
  }

  async mkdir(guestDir: string, name: string, mode: number): Promise<BigIntStats> {
    checkHostName(name);
    return this.shared(async () => {
      await this.verifyDir(guestDir);
      const host = this.hostPath(childPath(guestDir, name));
      try {
        await fsp.mkdir(host, mode & 0o777);
        if (!isWindows) await fsp.chmod(host, mode & this.setidMask).catch(() => {});
        return await fsp.lstat(host, { bigint: true });
      } catch (err) {
        throw ErrnoError.fromNode(err);
      }
    });
  }

  /** Regular files and FIFOs only; devices are EPERM, sockets EOPNOTSUPP. */
  async mknod(guestDir: string, name: string, mode: number): Promise<BigIntStats> {
    checkHostName(name);
    const type = mode & S_IFMT;
    if (type === S_IFREG || type === 0) {
      const f = await this.createFile(guestDir, name, C.O_RDONLY, mode, true);
      const st = f.stat;
      await f.close();
      return st;
    }
    if (type !== S_IFIFO) {
      throw new ErrnoError(type === 0o140000 ? Errno.EOPNOTSUPP : Errno.EPERM, 'only regular files and FIFOs can be created');
    }
    if (isWindows) throw new ErrnoError(Errno.EPERM, 'FIFOs are not supported on this host');
    return this.shared(async () => {
      await this.verifyDir(guestDir);
      const host = this.hostPath(childPath(guestDir, name));
      // Node has no mkfifo; mkfifo(1) creates the final component without following it.
      await new Promise<void>((resolve, reject) => {
        execFile('mkfifo', ['-m', (mode & 0o777).toString(8), '--', host], (err, _out, stderr) => {
          if (!err) return resolve();
          reject(new ErrnoError(/exists/i.test(stderr) ? Errno.EEXIST : Errno.EPERM, `mkfifo: ${stderr.trim()}`));
        });
      });
      try {
        return await fsp.lstat(host, { bigint: true });
      } catch (err) {
        throw ErrnoError.fromNode(err);
      }
    });
  }

  /** Create a symlink whose content is `target`, verbatim (it is never resolved here). */
  async symlink(guestDir: string, name: string, target: string): Promise<BigIntStats> {
    checkHostName(name);
    if (target.length === 0 || target.includes('\0')) throw new ErrnoError(Errno.EINVAL, 'invalid symlink target');
    return this.shared(async () => {
      await this.verifyDir(guestDir);
      const host = this.hostPath(childPath(guestDir, name));
      try {
        await fsp.symlink(target, host, 'file');
        return await fsp.lstat(host, { bigint: true });
      } catch (err) {
        throw ErrnoError.fromNode(err);
      }
    });
  }

  async readlink(guestPath: string): Promise<string> {
    return this.shared(async () => {
      const st = await this.lstatLocked(guestPath);
      if (!st.isSymbolicLink()) throw new ErrnoError(Errno.EINVAL, `${guestPath} is not a symlink`);
      const host = this.hostPath(guestPath);
      try {
        return await (this.pool.isSlow(host) ? this.pool.readlink(host) : fsp.readlink(host));
      } catch (err) {
        throw ErrnoError.fromNode(err);
      }
    });
  }

  /** Hard link: both names are inside this root by construction. */
  async link(targetPath: string, guestDir: string, name: string): Promise<void> {
    checkHostName(name);
    return this.shared(async () => {
      const st = await this.lstatLocked(targetPath);
      if (st.isDirectory()) throw new ErrnoError(Errno.EPERM, 'cannot hard-link a directory');
      // link(2) follows a symlink source on macOS; Linux links the symlink itself.
      if (st.isSymbolicLink() && !platformOf()?.hardLinksSymlinks) throw new ErrnoError(Errno.EPERM, 'cannot hard-link a symlink here');
      await this.verifyDir(guestDir);
      try {
        await fsp.link(this.hostPath(targetPath), this.hostPath(childPath(guestDir, name)));
      } catch (err) {
        throw ErrnoError.fromNode(err);
      }
    });
  }

  /** unlink (or rmdir with `directory`). */
  async remove(guestDir: string, name: string, directory: boolean): Promise<void> {
    checkHostName(name);
    const guestPath = childPath(guestDir, name);
    return this.exclusive(async () => {
      const st = await this.lstatLocked(guestPath);
      await this.verifyDir(guestDir);
      const host = this.hostPath(guestPath);
      try {
        if (directory) {
          if (!st.isDirectory()) throw new ErrnoError(Errno.ENOTDIR, `${guestPath} is not a directory`);
          await fsp.rmdir(host);
        } else {
          if (st.isDirectory()) throw new ErrnoError(Errno.EISDIR, `${guestPath} is a directory`);
          await fsp.unlink(host);
        }
      } catch (err) {
        throw ErrnoError.fromNode(err);
      }
    });
  }

  async rename(fromDir: string, fromName: string, toDir: string, toName: string): Promise<void> {
    checkHostName(fromName);
    checkHostName(toName);
    const from = childPath(fromDir, fromName);
    const to = childPath(toDir, toName);
    return this.exclusive(async () => {
      await this.lstatLocked(from);
      await this.verifyDir(toDir);
      if (to === from) return;
      if (to.startsWith(from + '/')) throw new ErrnoError(Errno.EINVAL, 'cannot move a directory into itself');
      try {
        await fsp.rename(this.hostPath(from), this.hostPath(to));
      } catch (err) {
        throw ErrnoError.fromNode(err);
      }
    });
  }

  /** chmod (never on a symlink: Linux cannot either, it is a silent no-op here). */
  async chmod(guestPath: string, mode: number): Promise<void> {
    return this.shared(async () => {
      const st = await this.lstatLocked(guestPath);
      if (st.isSymbolicLink()) return;
      try {
        await fsp.chmod(this.hostPath(guestPath), mode & this.setidMask);
      } catch (err) {
        throw ErrnoError.fromNode(err);
      }
    });
  }

  /** lchown; EPERM is ignored when ignoreOwnershipErrors (the default). -1 keeps a field. */
  async chown(guestPath: string, uid: number, gid: number): Promise<void> {
    return this.shared(async () => {
      const st = await this.lstatLocked(guestPath);
      if (isWindows) return;
      try {
        await fsp.lchown(this.hostPath(guestPath), uid < 0 ? Number(st.uid) : uid, gid < 0 ? Number(st.gid) : gid);
      } catch (err) {
        const e = ErrnoError.fromNode(err);
        if (e.errno === Errno.EPERM && this.ignoreOwnershipErrors) return;
        throw e;
      }
    });
  }

  async truncate(guestPath: string, size: number): Promise<void> {
    return this.shared(async () => {
      const st = await this.lstatLocked(guestPath);
      if (st.isDirectory()) throw new ErrnoError(Errno.EISDIR, `${guestPath} is a directory`);
      if (!st.isFile()) throw new ErrnoError(Errno.EINVAL, `${guestPath} is not a regular file`);
      try {
        await fsp.truncate(this.hostPath(guestPath), size);
      } catch (err) {
        throw ErrnoError.fromNode(err);
      }
    });
  }

  /** Set times (seconds, fractional); undefined keeps the current value. Never follows a symlink. */
  async utimes(guestPath: string, atime: number | undefined, mtime: number | undefined): Promise<void> {
    return this.shared(async () => {
      const st = await this.lstatLocked(guestPath);
      const a = atime ?? Number(st.atimeNs) / 1e9;
      const m = mtime ?? Number(st.mtimeNs) / 1e9;
      try {
        await fsp.lutimes(this.hostPath(guestPath), a, m);
      } catch (err) {
        throw ErrnoError.fromNode(err);
      }
    });
  }

  async statfs(guestPath: string): Promise<NinepStatfs> {
    return this.shared(async () => {
      await this.lstatLocked(guestPath);
      try {
        const s = await fsp.statfs(this.hostPath(guestPath), { bigint: true });
        return {
          type: 0x01021997,
          bsize: Number(s.bsize),
          blocks: Number(s.blocks),
          bfree: Number(s.bfree),
          bavail: Number(s.bavail),
          files: Number(s.files),
          ffree: Number(s.ffree),
          fsid: this.rootDev,
          namelen: 255,
        };
      } catch (err) {
        throw ErrnoError.fromNode(err);
      }
    });
  }

  /**
   * Names and d_types of a directory (without '.' and '..'): from the open
   * descriptor on Linux (race-free), else by path with the chain verified.
   */
  async listNames(dir: ConfinedFile): Promise<Array<{ name: string; type: number }>> {
    const viaFd = procFd && dir.fh !== undefined;
    const list = async () => {
      if (!viaFd) await this.verifyDir(dir.guestPath);
      let entries: Dirent[];
      try {
        entries = await fsp.readdir(viaFd ? `/proc/self/fd/${dir.fh!.fd}` : this.hostPath(dir.guestPath), { withFileTypes: true });
      } catch (err) {
        throw ErrnoError.fromNode(err);
      }
      return entries.map((d) => ({ name: d.name, type: direntTypeOfDirent(d) }));
    };
    return viaFd ? list() : this.shared(list);
  }

  /**
   * lstat of entries of an open directory; undefined for entries that
   * vanished or cannot be represented.
   */
  async statEntries(dir: ConfinedFile, names: readonly string[]): Promise<Array<BigIntStats | undefined>> {
    const viaFd = procFd && dir.fh !== undefined;
    const run = async () => {
      if (!viaFd) await this.verifyDir(dir.guestPath);
      return lstatNames(viaFd ? `/proc/self/fd/${dir.fh!.fd}` : this.hostPath(dir.guestPath), names);
    };
    return viaFd ? run() : this.shared(run);
  }
}

/** Entries lstat'ed at once before the event loop gets a turn. */
const LSTAT_CHUNK = 256;

/**
 * lstat of each name in `dir` (undefined where it fails), for a directory
 * listing's attributes. Synchronous calls in chunks: a local lstat takes a
 * microsecond or two, while each promise through libuv's thread pool costs
 * ten times that, which made a 10,000-entry readdir take 150 ms on its own.
 * The event loop gets a turn between chunks.
 *
 * Each chunk runs with the process's working directory in `dir` and lstats
 * bare names: the kernel then resolves `dir` (for the server, the magic link
 * /proc/self/fd/N, race-free) once per chunk instead of once per name, which
 * halves the cost (10,000 names: 25 ms instead of 55 ms here). Nothing else
 * can run JavaScript during the synchronous chunk, and the working directory
 * is back before it yields; the one thing that could see the change is a
 * relative path already queued in libuv's thread pool, and the launcher
 * hands fs only absolute paths (every path from the command line goes
 * through path.resolve). Where the working directory cannot be entered or
 * left, names are joined to `dir` as before.
 */
export async function lstatNames(dir: string, names: readonly string[]): Promise<Array<BigIntStats | undefined>> {
  const out: Array<BigIntStats | undefined> = new Array(names.length);
  for (let i = 0; i < names.length; i += LSTAT_CHUNK) {
    if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    const end = Math.min(names.length, i + LSTAT_CHUNK);
    const back = enterDir(dir);
    try {
      for (let j = i; j < end; j++) {
        try {
          out[j] = fs.lstatSync(back === undefined ? path.join(dir, names[j]!) : names[j]!, { bigint: true, throwIfNoEntry: false });
        } catch {
          out[j] = undefined;
        }
      }
    } finally {
      if (back !== undefined) leaveDir(back);
    }
  }
  return out;
}

/** chdir into `dir`; the directory to return to, or undefined (and no change) when that is not possible. */
function enterDir(dir: string): string | undefined {
  // Worker threads cannot chdir; a deleted working directory has no name to return to.
  if (!isMainThread) return undefined;
  let back: string;
  try {
    back = process.cwd();
    process.chdir(dir);
  } catch {
    return undefined;
  }
  return back;
}

function leaveDir(back: string): void {
  try {
    process.chdir(back);
  } catch {
    // The old working directory went away during the chunk: there is no
    // going back to it; the root at least resolves nothing relative to `dir`.
    process.chdir('/');
  }
}

function direntTypeOfDirent(d: Dirent): number {
  if (d.isDirectory()) return 4;
  if (d.isFile()) return 8;
  if (d.isSymbolicLink()) return 10;
  if (d.isFIFO()) return 1;
  if (d.isSocket()) return 12;
  if (d.isCharacterDevice()) return 2;
  if (d.isBlockDevice()) return 6;
  return 0;
}

/** An open file or directory below a ConfinedRoot. */
export class ConfinedFile {
  readonly root: ConfinedRoot;
  /** The guest path at open time (may be stale after a rename; I/O uses the descriptor). */
  readonly guestPath: string;
  /** Undefined for directories on Windows and for files on a mount served by the pool (pooledFd). */
  readonly fh: FileHandle | undefined;
  /** The descriptor of a file on a remote or FUSE mount: every call on it goes to the pool (host-fs-pool.ts). */
  readonly pooledFd: number | undefined;
  /** stat of the opened file at open time. */
  readonly stat: BigIntStats;
  private closed = false;

  constructor(root: ConfinedRoot, guestPath: string, fh: FileHandle | undefined, stat: BigIntStats, pooledFd?: number) {
    this.root = root;
    this.guestPath = guestPath;
    this.fh = fh;
    this.stat = stat;
    this.pooledFd = pooledFd;
  }

  /** The open descriptor (undefined only for directories on Windows). */
  get fd(): number | undefined {
    return this.fh?.fd ?? this.pooledFd;
  }

  /** The host path at open time: what a pooled call names as the place it waits on. */
  private get where(): string {
    return this.root.hostPath(this.guestPath);
  }

  get isDirectory(): boolean {
    return (Number(this.stat.mode) & S_IFMT) === S_IFDIR;
  }

  async read(target: Uint8Array, position: number): Promise<number> {
    if (this.isDirectory) throw new ErrnoError(Errno.EISDIR, 'is a directory');
    try {
      if (this.pooledFd !== undefined) return await this.root.pool.read(this.pooledFd, target, position, this.where);
      const { bytesRead } = await this.fh!.read(target, 0, target.length, position);
      return bytesRead;
    } catch (err) {
      throw ErrnoError.fromNode(err);
    }
  }

  async write(data: Uint8Array, position: number): Promise<number> {
    if (this.isDirectory) throw new ErrnoError(Errno.EISDIR, 'is a directory');
    try {
      let done = 0;
      while (done < data.length) {
        const bytesWritten =
          this.pooledFd !== undefined
            ? await this.root.pool.write(this.pooledFd, data.subarray(done), position + done, this.where)
            : (await this.fh!.write(data, done, data.length - done, position + done)).bytesWritten;
        if (bytesWritten <= 0) break;
        done += bytesWritten;
      }
      return done;
    } catch (err) {
      throw ErrnoError.fromNode(err);
    }
  }

  async fstat(): Promise<BigIntStats> {
    if (this.pooledFd !== undefined) return this.root.pool.fstat(this.pooledFd, this.where);
    if (this.fh === undefined) return this.root.lstat(this.guestPath);
    try {
      return fs.fstatSync(this.fh.fd, { bigint: true }); // synchronous: see ConfinedRoot.lstatLocked
    } catch (err) {
      throw ErrnoError.fromNode(err);
    }
  }

  async sync(datasync: boolean): Promise<void> {
    if (this.fh === undefined && this.pooledFd === undefined) return;
    try {
      await (this.pooledFd !== undefined ? this.root.pool.fsync(this.pooledFd, datasync, this.where) : datasync ? this.fh!.datasync() : this.fh!.sync());
    } catch (err) {
      const e = ErrnoError.fromNode(err);
      // fsync on a directory or FIFO is EINVAL on some hosts; nothing to flush.
      if (e.errno !== Errno.EINVAL && e.errno !== Errno.EBADF && e.errno !== Errno.EPERM) throw e;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.pooledFd !== undefined) await this.root.pool.close(this.pooledFd, this.where).catch(() => {});
    await this.fh?.close().catch(() => {});
  }
}
