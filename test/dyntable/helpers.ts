// Shared by the dyntable tests: host contexts for any OS, temp trees, and a
// snapshot of a host tree (content, mode, mtime) to prove it stays identical.
import { createHash } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix, win32 } from 'node:path';
import type { KnownFolderScan } from '../../src/dyntable/known-folders.ts';
import { nowTimespec } from '../../src/dyntable/layer-store.ts';
import { S_IFREG } from '../../src/ninep/backend.ts';
import type { HostContext, HostFsProbe } from '../../src/dyntable/name-mapping.ts';

export function tempDir(prefix = 'pocketvm-dyntable-'): string {
  return realpathSync(mkdtempSync(join(tmpdir(), prefix)));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** A probe where every listed folder exists (case per `caseInsensitive`). */
export function fakeFs(dirs: string[], style: 'posix' | 'win32' = 'posix', caseInsensitive = false): HostFsProbe {
  const mod = style === 'win32' ? win32 : posix;
  const norm = (p: string) => (caseInsensitive ? mod.normalize(p).toLowerCase() : mod.normalize(p));
  const set = new Set(dirs.map(norm));
  return {
    kind: (p) => (set.has(norm(p)) ? 'dir' : 'missing'),
    realpath: (p) => (set.has(norm(p)) ? mod.normalize(p) : undefined),
  };
}

export function fakeHost(options: {
  os?: HostContext['os'];
  home?: string;
  knownFolders?: KnownFolderScan;
  dirs?: string[];
  stickRoot?: string;
  env?: Record<string, string>;
  fs?: HostFsProbe;
  caseInsensitive?: boolean;
}): HostContext {
  const os = options.os ?? 'linux';
  const pathStyle = os === 'windows' ? 'win32' : 'posix';
  const home = options.home ?? (os === 'windows' ? 'C:\\Users\\me' : os === 'darwin' ? '/Users/me' : '/home/me');
  const caseInsensitive = options.caseInsensitive ?? os !== 'linux';
  return {
    os,
    pathStyle,
    home,
    user: 'me',
    caseInsensitive,
    env: options.env ?? {},
    knownFolders: options.knownFolders ?? { folders: {}, notes: [] },
    ...(options.stickRoot ? { stickRoot: options.stickRoot } : {}),
    fs: options.fs ?? fakeFs(options.dirs ?? [], pathStyle, caseInsensitive),
  };
}

/** A live-filesystem host context rooted at a temp "home" (Linux tests). */
export function liveHost(home: string, extra: Partial<HostContext> = {}): HostContext {
  return {
    os: 'linux',
    pathStyle: 'posix',
    home,
    user: 'me',
    caseInsensitive: false,
    env: {},
    knownFolders: { folders: {}, notes: [] },
    fs: {
      kind(p) {
        try {
          const st = lstatSync(p);
          return st.isDirectory()
            ? 'dir'
            : st.isFile()
              ? 'file'
              : st.isSymbolicLink()
                ? (() => {
                    try {
                      return lstatSync(realpathSync(p)).isDirectory() ? 'dir' : 'file';
                    } catch {
                      return 'missing';
                    }
                  })()
                : 'other';
        } catch {
          return 'missing';
        }
      },
      realpath(p) {
        try {
          return realpathSync(p);
        } catch {
          return undefined;
        }
      },
    },
    ...extra,
  };
}

export interface SnapshotItem {
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  mtimeNs: bigint;
  sha256?: string;
  target?: string;
  size?: bigint;
}

/** content + mode + mtime of every file, folder and symlink below `root`. */
export function snapshotTree(root: string): Map<string, SnapshotItem> {
  const out = new Map<string, SnapshotItem>();
  const visit = (rel: string) => {
    const path = rel ? join(root, rel) : root;
    const st = lstatSync(path, { bigint: true });
    const item: SnapshotItem = {
      type: st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other',
      mode: Number(st.mode),
      mtimeNs: st.mtimeNs,
    };
    if (st.isFile()) {
      item.sha256 = createHash('sha256').update(readFileSync(path)).digest('hex');
      item.size = st.size;
    }
    if (st.isSymbolicLink()) item.target = readlinkSync(path);
    out.set(rel || '.', item);
    if (st.isDirectory()) for (const name of readdirSync(path).sort()) visit(rel ? join(rel, name) : name);
  };
  visit('');
  return out;
}

/** The fields of a new regular file's node in a LayerStore (times: now, or the ones given). */
export function fileFields(t: { sec: number; nsec: number } = nowTimespec()) {
  return {
    mode: S_IFREG | 0o644,
    uid: 0,
    gid: 0,
    rdev: 0,
    target: null,
    qid: null,
    atimeSec: t.sec,
    atimeNsec: t.nsec,
    mtimeSec: t.sec,
    mtimeNsec: t.nsec,
    ctimeSec: t.sec,
    ctimeNsec: t.nsec,
    btimeSec: t.sec,
    btimeNsec: t.nsec,
  };
}
