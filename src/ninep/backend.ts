// The contract between the 9P2000.L protocol server (server.ts) and whatever
// provides the files: LocalDirBackend (one confined host directory) for tests
// and the baseline, and the dyntable NamespaceBackend (FIT/FET resolution with
// copy-on-write into users/<name>/upper/) in production.
//
// The server knows nothing about the host: it tracks fids as guest paths and
// calls this interface. Everything here speaks the guest's (Linux) language:
// modes are Linux st_mode values, open flags are Linux/9P2000.L flags, errors
// are Linux errno numbers, whatever the host OS is. Each backend maps to and
// from its host.
//
// Guest paths: normalised absolute POSIX strings, '/' for the root and
// '/a/b' below it (no trailing slash, no empty, '.' or '..' component).
// Names: a single component, never '', '.', '..', and never containing '/'
// or NUL. The server enforces both before it calls a backend, so a backend may
// rely on them — but a backend that maps names to a host must still confine
// itself (symlinks, races), because the server cannot see the host.

/** Linux errno numbers (asm-generic), the values 9P2000.L Rlerror carries. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  ETXTBSY: 26,
  EFBIG: 27,
  ENOSPC: 28,
  ESPIPE: 29,
  EROFS: 30,
  EMLINK: 31,
  EPIPE: 32,
  ERANGE: 34,
  EDEADLK: 35,
  ENAMETOOLONG: 36,
  ENOLCK: 37,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  EPROTO: 71,
  EOVERFLOW: 75,
  EBADMSG: 74,
  EILSEQ: 84,
  EOPNOTSUPP: 95,
  ECONNRESET: 104,
  ENOBUFS: 105,
  ETIMEDOUT: 110,
  ESTALE: 116,
  EDQUOT: 122,
  ECANCELED: 125,
} as const;

export type ErrnoName = keyof typeof Errno;

/** Node's error `code` strings (any host OS) → Linux errno numbers. */
const nodeCodeToErrno: Record<string, number> = {
  ...Errno,
  ENOTSUP: Errno.EOPNOTSUPP,
  EWOULDBLOCK: Errno.EAGAIN,
  // Windows-only libuv codes and odd spellings.
  EFTYPE: Errno.EINVAL,
  ENOTCONN: Errno.EIO,
  ECHARSET: Errno.EILSEQ,
  EUNKNOWN: Errno.EIO,
  UNKNOWN: Errno.EIO,
  ERR_FS_FILE_TOO_LARGE: Errno.EFBIG,
  ERR_OUT_OF_RANGE: Errno.EINVAL,
  ERR_INVALID_ARG_VALUE: Errno.EINVAL,
  ERR_INVALID_ARG_TYPE: Errno.EINVAL,
  ERR_STRING_TOO_LONG: Errno.EOVERFLOW,
  ERR_BUFFER_TOO_LARGE: Errno.ENOMEM,
};

/**
 * An error that carries the Linux errno the guest should see. Backends throw
 * these (or Node fs errors, which the server converts with fromNode); anything
 * else becomes EIO.
 */
export class ErrnoError extends Error {
  readonly errno: number;

  constructor(errno: number, message?: string, options?: { cause?: unknown }) {
    super(message ?? `errno ${errno}`, options);
    this.name = 'ErrnoError';
    this.errno = errno;
  }

  /** Build from a name: `ErrnoError.of('ENOENT', 'no /a/b')`. */
  static of(name: ErrnoName, message?: string): ErrnoError {
    return new ErrnoError(Errno[name], message ?? name);
  }

  /**
   * Map anything thrown (a Node fs error with `code`, an ErrnoError, or an
   * unknown value) to an ErrnoError. Never throws.
   */
  static fromNode(err: unknown): ErrnoError {
    if (err instanceof ErrnoError) return err;
    const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
    const errno = typeof code === 'string' ? nodeCodeToErrno[code] : undefined;
    const message = err instanceof Error ? err.message : String(err);
    return new ErrnoError(errno ?? Errno.EIO, message, { cause: err });
  }
}

/** Linux file type bits of st_mode (same values on every host Node runs on). */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

/** 9P qid.type bits. */
export const QidType = {
  DIR: 0x80,
  APPEND: 0x40,
  EXCL: 0x20,
  MOUNT: 0x10,
  AUTH: 0x08,
  TMP: 0x04,
  SYMLINK: 0x02,
  LINK: 0x01,
  FILE: 0x00,
} as const;

/**
 * The server's unique identity of a file. `path` must be unique within the
 * whole namespace for as long as the file exists (the Linux client uses it as
 * the inode number and to match dentries); `version` should change when the
 * content changes (mtime-derived is fine); `type` is QidType bits matching the
 * file type.
 */
export interface Qid {
  type: number;
  version: number;
  path: bigint;
}

/** qid.type for a Linux st_mode. */
export function qidTypeOfMode(mode: number): number {
  switch (mode & S_IFMT) {
    case S_IFDIR:
      return QidType.DIR;
    case S_IFLNK:
      return QidType.SYMLINK;
    default:
      return QidType.FILE;
  }
}

/** Linux dirent d_type for a Linux st_mode (DT_* values). */
export function direntTypeOfMode(mode: number): number {
  return (mode & S_IFMT) >>> 12;
}

/**
 * A file's four times, split into whole seconds and nanoseconds (a
 * nanosecond epoch does not fit a double).
 */
export interface NinepTimes {
  atimeSec: number;
  atimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
  btimeSec: number;
  btimeNsec: number;
}

/** All four times set to one instant (a new file or folder). */
export function sameTimes(sec: number, nsec: number): NinepTimes {
  return { atimeSec: sec, atimeNsec: nsec, mtimeSec: sec, mtimeNsec: nsec, ctimeSec: sec, ctimeNsec: nsec, btimeSec: sec, btimeNsec: nsec };
}

/** lstat of a file, as the guest should see it. */
export interface NinepAttr extends NinepTimes {
  qid: Qid;
  /** Full Linux st_mode: type bits | permission bits. */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  rdev: number;
  size: number;
  blksize: number;
  /** 512-byte blocks actually allocated (a sparse file reports fewer). */
  blocks: number;
}

/** Tsetattr valid-mask bits (include/net/9p/9p.h P9_ATTR_*). */
export const SetattrMask = {
  MODE: 0x1,
  UID: 0x2,
  GID: 0x4,
  SIZE: 0x8,
  ATIME: 0x10,
  MTIME: 0x20,
  CTIME: 0x40,
  /** With ATIME: use atimeSec/atimeNsec; ATIME alone means "now". */
  ATIME_SET: 0x80,
  /** With MTIME: use mtimeSec/mtimeNsec; MTIME alone means "now". */
  MTIME_SET: 0x100,
} as const;

/**
 * A Tsetattr request, passed through as the guest sent it. Only the fields
 * whose bit is in `valid` count. ATIME without ATIME_SET means "set atime to
 * now" (likewise MTIME); CTIME alone means "touch ctime" (a backend may treat
 * it as a no-op, the host updates ctime on any other change). `mode` carries
 * permission bits only (the file type never changes). Apply SIZE (truncate or
 * extend, sparse) before times, so an explicit mtime survives.
 */
export interface SetattrRequest {
  valid: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  atimeSec: number;
  atimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
}

/** One directory entry. `offset` is the cookie that resumes AFTER this entry. */
export interface NinepDirent {
  qid: Qid;
  /** Linux d_type (DT_DIR 4, DT_REG 8, DT_LNK 10, ...); see direntTypeOfMode. */
  type: number;
  name: string;
  offset: number;
  /**
   * Optional: the entry's lstat, taken now. The server uses it to answer the
   * walk + getattr that follow a listing (`ls -l`, `find`) without asking
   * the backend again (see NinepServerOptions.attrCacheMs). A function is
   * called only if such a walk or getattr comes: most listings (a glob, a
   * plain `ls`) never need the attributes, and building them for 10,000
   * entries cost more than the listing itself.
   */
  attr?: LazyAttr;
}

/** An attribute, or what builds it on first use. */
export type LazyAttr = NinepAttr | (() => NinepAttr);

/** Linux/9P2000.L open flags (P9_DOTL_*; octal, identical to Linux x86 O_*). */
export const OpenFlags = {
  RDONLY: 0o0,
  WRONLY: 0o1,
  RDWR: 0o2,
  ACCMODE: 0o3,
  CREATE: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  NONBLOCK: 0o4000,
  DSYNC: 0o10000,
  FASYNC: 0o20000,
  DIRECT: 0o40000,
  LARGEFILE: 0o100000,
  DIRECTORY: 0o200000,
  NOFOLLOW: 0o400000,
  NOATIME: 0o1000000,
  CLOEXEC: 0o2000000,
  SYNC: 0o4000000,
} as const;

/** Tunlinkat flag: remove a directory (rmdir) instead of a file. */
export const AT_REMOVEDIR = 0x200;

/**
 * An open file or directory (one per opened fid). The server serialises
 * nothing: the guest may issue concurrent reads/writes on one handle, so a
 * handle must use positional I/O only.
 */
export interface NinepHandle {
  /** Identity of the opened file (for Rlopen/Rlcreate). */
  readonly qid: Qid;
  /**
   * Read up to `target.length` bytes at file offset `position` into `target`
   * (a view into the server's reply buffer: no copy). Returns the byte count:
   * fewer at end of file, 0 at or past it.
   */
  read(target: Uint8Array, position: number): Promise<number>;
  /**
   * Write `data` at `position` (at the end if opened O_APPEND); returns bytes
   * written. `data` is a view into the request frame: do not keep it after
   * the promise settles.
   */
  write(data: Uint8Array, position: number): Promise<number>;
  /**
   * Directory handles only: entries starting at cookie `offset` (0 = start;
   * then the `offset` of the last entry returned), at most `maxEntries`
   * (the server asks for more if they fit; fewer is not the end: a backend
   * may answer in batches so the guest starts sooner). '.' and '..' are NOT included;
   * the server adds them. Offsets must stay valid while the handle is open
   * even if the directory changes (snapshotting at offset 0 is fine). Returns
   * [] at the end. Non-directories throw ENOTDIR.
   */
  readdir(offset: number, maxEntries: number): Promise<NinepDirent[]>;
  /** fstat: works even after the path was unlinked or renamed. */
  getattr(): Promise<NinepAttr>;
  fsync(datasync: boolean): Promise<void>;
  /** Release the host resource. Called exactly once; must not throw. */
  close(): Promise<void>;
}

export interface NinepStatfs {
  /** f_type magic; 0x01021997 (V9FS_MAGIC) is a fine default. */
  type: number;
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  fsid: bigint;
  namelen: number;
}

/** Tlock types and results (P9_LOCK_TYPE_*, P9_LOCK_*). */
export const LockType = { RDLCK: 0, WRLCK: 1, UNLCK: 2 } as const;
export const LockStatus = { SUCCESS: 0, BLOCKED: 1, ERROR: 2, GRACE: 3 } as const;

export interface LockRequest {
  type: number;
  /** P9_LOCK_FLAGS_BLOCK 1, P9_LOCK_FLAGS_RECLAIM 2. */
  flags: number;
  start: number;
  length: number;
  procId: number;
  clientId: string;
}

/**
 * Everything the 9P server needs. All methods are async and report failure
 * by throwing an ErrnoError (or a Node fs error; the server maps it with
 * ErrnoError.fromNode). `dirPath` arguments name an existing directory; `name`
 * arguments are single components as described at the top of this file.
 *
 * Backends must never follow a symlink in a path they are given: a symlink is
 * a file the guest reads with readlink and resolves itself (walking a path
 * through a symlink component is ENOTDIR or ELOOP).
 */
export interface NinepBackend {
  /** lstat. */
  getattr(path: string): Promise<NinepAttr>;
  /** See SetattrRequest for the mask semantics. */
  setattr(path: string, request: SetattrRequest): Promise<void>;
  /**
   * Open an existing file or directory. `flags` are OpenFlags (never CREATE:
   * the server strips it; creation goes through create). Opening a symlink is
   * ELOOP; O_TRUNC truncates; write access to a directory is EISDIR.
   */
  open(path: string, flags: number): Promise<NinepHandle>;
  /**
   * Create `name` in `dirPath` as a regular file with permission bits `mode`
   * and open it with `flags` (exclusive: an existing name is EEXIST).
   * `gid` is the guest's requested group (a backend may ignore it).
   */
  create(dirPath: string, name: string, flags: number, mode: number, gid: number): Promise<NinepHandle>;
  mkdir(dirPath: string, name: string, mode: number, gid: number): Promise<Qid>;
  /**
   * `mode` includes the file type bits. Regular files and FIFOs (and sockets
   * if the host can) are enough; device nodes may be refused with EPERM.
   */
  mknod(dirPath: string, name: string, mode: number, major: number, minor: number, gid: number): Promise<Qid>;
  /** Create symlink `name` in `dirPath` whose content is `target` (stored verbatim, never resolved). */
  symlink(dirPath: string, name: string, target: string, gid: number): Promise<Qid>;
  readlink(path: string): Promise<string>;
  /** Hard link: make `dirPath/name` another name of the existing non-directory `targetPath`. */
  link(targetPath: string, dirPath: string, name: string): Promise<void>;
  /** Remove `name`; with flags & AT_REMOVEDIR it must be an empty directory, else it must not be a directory. */
  unlink(dirPath: string, name: string, flags: number): Promise<void>;
  /** rename(2) semantics: replaces an existing target (a directory only if empty). */
  rename(fromDir: string, fromName: string, toDir: string, toName: string): Promise<void>;
  statfs(path: string): Promise<NinepStatfs>;
  /** The value of extended attribute `name`; ENODATA when it is absent (the usual answer). */
  xattrGet(path: string, name: string): Promise<Uint8Array>;
  /** Names of the extended attributes (an empty list is fine). */
  xattrList(path: string): Promise<string[]>;
  /**
   * Set (or with value null, remove) an extended attribute; flags are
   * XATTR_CREATE 1 / XATTR_REPLACE 2. Optional: when absent the server answers
   * EOPNOTSUPP, which `cp -a` tolerates.
   */
  xattrSet?(path: string, name: string, value: Uint8Array | null, flags: number): Promise<void>;
  /**
   * POSIX record lock. Optional: when absent the server grants every lock
   * (advisory no-op), so programs that lock do not fail.
   */
  lock?(path: string, request: LockRequest): Promise<number>;
  /** Test a lock; return the conflicting lock or the request with type UNLCK. Optional, like lock. */
  getlock?(path: string, request: LockRequest): Promise<LockRequest>;
  /** The server is done with the backend (channel closed). Optional. */
  close?(): Promise<void>;
}

/** `dirPath` + `name` as a guest path ('/' + 'a' → '/a'). */
export function childPath(dirPath: string, name: string): string {
  return dirPath === '/' ? `/${name}` : `${dirPath}/${name}`;
}

/** The parent of a guest path ('/a/b' → '/a', '/a' → '/', '/' → '/'). */
export function parentPath(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** The last component of a guest path ('/' → ''). */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** True if `name` is a component the server may pass to a backend. */
export function isValidName(name: string): boolean {
  return name.length > 0 && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}
