// Paths inside an unpacked package tree. Debian packages contain absolute
// symlinks (/lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/...) that
// must be followed inside the tree, never on the build host.
import { lstat, readlink } from 'node:fs/promises';
import { posix } from 'node:path';

/**
 * Follows symlinks within `tree` and returns the tree-relative path of the
 * regular file `relPath` ends at, or undefined if it does not exist there.
 */
export async function resolveInTree(tree: string, relPath: string): Promise<string | undefined> {
  let current = posix.normalize(relPath).replace(/^\/+/, '');
  for (let hops = 0; hops < 32; hops++) {
    let info;
    try {
      info = await lstat(posix.join(tree, current));
    } catch {
      return undefined;
    }
    if (info.isFile()) return current;
    if (!info.isSymbolicLink()) return undefined;
    const target = await readlink(posix.join(tree, current));
    current = posix.normalize(target.startsWith('/') ? target.slice(1) : posix.join(posix.dirname(current), target));
    if (current.startsWith('..')) return undefined;
  }
  return undefined;
}
