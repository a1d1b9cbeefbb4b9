// A writer for the cpio "newc" format (the only one the kernel's initramfs
// unpacker accepts). Written here rather than shelling out to cpio(1) so the
// archive is byte-for-byte reproducible: fixed inode numbers, owners and
// mtimes, whatever the build machine's umask or clock.

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const TRAILER = 'TRAILER!!!';

export type CpioEntry =
  | { type: 'file'; path: string; mode: number; data: Buffer }
  | { type: 'directory'; path: string; mode: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'char-device'; path: string; mode: number; major: number; minor: number };

export interface CpioOptions {
  /** Modification time for every entry, in seconds since the epoch. */
  mtime?: number;
}

function hex8(value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`cpio field out of range: ${value}`);
  return value.toString(16).padStart(8, '0');
}

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

function header(fields: { ino: number; mode: number; nlink: number; mtime: number; size: number; rdevMajor: number; rdevMinor: number; nameSize: number }): string {
  return (
    '070701' +
    hex8(fields.ino) +
    hex8(fields.mode) +
    hex8(0) + // uid: everything in the guest belongs to root
    hex8(0) + // gid
    hex8(fields.nlink) +
    hex8(fields.mtime) +
    hex8(fields.size) +
    hex8(0) + // devmajor
    hex8(0) + // devminor
    hex8(fields.rdevMajor) +
    hex8(fields.rdevMinor) +
    hex8(fields.nameSize) +
    hex8(0) // check: only used by the "crc" variant
  );
}

/** The 110-byte header, the name, and the data of one member, each padded to 4 bytes. */
function member(name: string, fields: { ino: number; mode: number; nlink: number; mtime: number; rdevMajor: number; rdevMinor: number }, data: Buffer): Buffer[] {
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  const head = Buffer.from(header({ ...fields, size: data.length, nameSize: nameBytes.length }), 'ascii');
  return [head, nameBytes, pad4(head.length + nameBytes.length), data, pad4(data.length)];
}

export function normalizeArchivePath(path: string): string {
  const clean = path.replace(/^\/+/, '').replace(/\/+$/, '').replace(/\/{2,}/g, '/');
  if (clean === '' || clean.split('/').some((part) => part === '..' || part === '.')) {
    throw new RangeError(`invalid archive path: ${JSON.stringify(path)}`);
  }
  return clean;
}

/**
 * Serialises entries in the order given, as a list of buffers (concatenate or
 * stream them). The kernel does not create missing parent directories, so
 * callers list a directory before anything inside it; `withParentDirectories`
 * does that for them.
 */
export function writeCpio(entries: Iterable<CpioEntry>, options: CpioOptions = {}): Buffer[] {
  const mtime = options.mtime ?? 0;
  const chunks: Buffer[] = [];
  let ino = 1;
  for (const entry of entries) {
    const name = normalizeArchivePath(entry.path);
    const base = { ino: ino++, mtime, rdevMajor: 0, rdevMinor: 0 };
    switch (entry.type) {
      case 'file':
        chunks.push(...member(name, { ...base, mode: S_IFREG | (entry.mode & 0o7777), nlink: 1 }, entry.data));
        break;
      case 'directory':
        chunks.push(...member(name, { ...base, mode: S_IFDIR | (entry.mode & 0o7777), nlink: 2 }, Buffer.alloc(0)));
        break;
      case 'symlink':
        chunks.push(...member(name, { ...base, mode: S_IFLNK | 0o777, nlink: 1 }, Buffer.from(entry.target, 'utf8')));
        break;
      case 'char-device':
        chunks.push(
          ...member(name, { ...base, mode: S_IFCHR | (entry.mode & 0o7777), nlink: 1, rdevMajor: entry.major, rdevMinor: entry.minor }, Buffer.alloc(0)),
        );
        break;
    }
  }
  chunks.push(...member(TRAILER, { ino: 0, mode: 0, nlink: 1, mtime: 0, rdevMajor: 0, rdevMinor: 0 }, Buffer.alloc(0)));
  return chunks;
}

/**
 * Sorts entries by path, adds every missing parent directory (mode 0755), and
 * rejects two entries for the same path, so the archive is deterministic and
 * unpackable whatever order the entries were collected in.
 */
export function withParentDirectories(entries: Iterable<CpioEntry>): CpioEntry[] {
  const byPath = new Map<string, CpioEntry>();
  for (const entry of entries) {
    const path = normalizeArchivePath(entry.path);
    if (byPath.has(path)) throw new RangeError(`duplicate archive path: ${path}`);
    byPath.set(path, { ...entry, path });
  }
  for (const path of [...byPath.keys()]) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      const existing = byPath.get(parent);
      if (!existing) byPath.set(parent, { type: 'directory', path: parent, mode: 0o755 });
      else if (existing.type !== 'directory') throw new RangeError(`${parent} is not a directory but ${path} is inside it`);
    }
  }
  // Sorting by path component puts "a" before "a/b" and before "a-b".
  return [...byPath.values()].sort((a, b) => compareComponents(a.path, b.path));
}

function compareComponents(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i] as string;
    const y = pb[i] as string;
    if (x !== y) return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}
