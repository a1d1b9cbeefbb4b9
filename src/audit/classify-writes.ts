// Which of the traced writes a host would keep: every path is sorted into
// the stick, the session's private runtime directory, devices, the
// processes' own /proc entries, anonymous memory, a checkout's cache, or
// the host, and only the last fails the audit (host-audit.ts).
import { existsSync } from 'node:fs';
import { basename, join, sep } from 'node:path';
import type { TracedWrite } from './strace-writes.ts';

export type WriteClass = 'stick' | 'runtime' | 'device' | 'process' | 'checkout' | 'anonymous' | 'host';

export interface PathFinding {
  path: string;
  class: WriteClass;
  ops: string[];
  programs: string[];
  /** Whether the path exists now, after the session. */
  existsAfter: boolean;
}

export interface ClassifyContext {
  /** The stick, as given and as its real path. */
  stickRoots: string[];
  /** Where the private runtime directory is made (XDG_RUNTIME_DIR, TMPDIR). */
  runtimeBases: string[];
  /** Processes traced: their /proc entries are their own. */
  pids: ReadonlySet<number>;
  /** Running from a checkout: its .cache/ (Node's compile cache) is the developer's, not a host's. */
  checkoutCache: string | undefined;
}

const DEVICE_FILES = /^\/dev\/(null|zero|full|random|urandom|tty|ptmx|kvm|pts\/\d+|tty\w*|fd\/\d+|stdin|stdout|stderr|net\/tun|vhost-net|vhost-vsock)$/;

function under(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** The private runtime directory `path` is in (or is), if it is one: `<base>/pocketvm-XXXXXX`. */
export function runtimeDirOf(path: string, bases: readonly string[]): string | undefined {
  for (const base of bases) {
    if (!under(path, base) || path === base) continue;
    const first = path.slice(base.length).split(sep).filter(Boolean)[0];
    if (first && /^pocketvm-[A-Za-z0-9]{6}$/.test(first)) return join(base, first);
  }
  return undefined;
}

/**
 * An O_TMPFILE file in /dev/shm (guest RAM, src/vmm/guest-ram.ts), as its
 * open names it (the folder) or its descriptor does (`#<inode> (deleted)`):
 * memory only, never a name anyone could open, gone with its last
 * descriptor, like a memfd.
 */
const UNNAMED_SHM_FILE = /^\/dev\/shm\/#\d+ \(deleted\)$/;
const SHM = '/dev/shm';

export function classify(write: Pick<TracedWrite, 'path' | 'op'>, context: ClassifyContext): WriteClass {
  const path = write.path.replace(/ \(deleted\)$/, '');
  if (!path.startsWith('/') || path.startsWith('/memfd:') || UNNAMED_SHM_FILE.test(write.path)) return 'anonymous';
  if (write.op === 'open(tmpfile)' && (path === SHM || path === `${SHM}/`)) return 'anonymous';
  if (context.stickRoots.some((root) => under(path, root))) return 'stick';
  if (runtimeDirOf(path, context.runtimeBases)) return 'runtime';
  if (write.op === 'open(write)' && DEVICE_FILES.test(path)) return 'device';
  const proc = /^\/proc\/(self|thread-self|\d+)\//.exec(path);
  if (proc && (proc[1] === 'self' || proc[1] === 'thread-self' || context.pids.has(Number(proc[1])))) return 'process';
  if (context.checkoutCache && under(path, context.checkoutCache)) return 'checkout';
  return 'host';
}

/** Groups writes by path and classifies them. */
export function findings(writes: readonly TracedWrite[], context: ClassifyContext, exists: (path: string) => boolean = existsSync): PathFinding[] {
  const byPath = new Map<string, PathFinding>();
  for (const write of writes) {
    const path = write.path.replace(/ \(deleted\)$/, '');
    let finding = byPath.get(path);
    if (!finding) {
      finding = { path, class: classify(write, context), ops: [], programs: [], existsAfter: false };
      byPath.set(path, finding);
    } else if (finding.class === 'device' && classify(write, context) === 'host') {
      finding.class = 'host';
    }
    if (!finding.ops.includes(write.op)) finding.ops.push(write.op);
    const program = write.program ? basename(write.program) : `pid ${write.pid}`;
    if (!finding.programs.includes(program)) finding.programs.push(program);
  }
  for (const finding of byPath.values()) finding.existsAfter = exists(finding.path);
  return [...byPath.values()].sort((a, b) => a.path.localeCompare(b.path));
}
