// Assembles the guest's initramfs from its parts (the rootfs files in git,
// binaries and libraries from the unpacked packages, kernel modules, busybox
// applet links) and writes it as a gzip-compressed newc archive.
import { spawnSync } from 'node:child_process';
import { lstat, readFile, readlink } from 'node:fs/promises';
import { posix } from 'node:path';
import { promisify } from 'node:util';
import { gzip, constants as zlibConstants } from 'node:zlib';
import { withParentDirectories, writeCpio, type CpioEntry } from './cpio.ts';
import { PayloadBuildError } from './errors.ts';
import type { PayloadFile } from './libraries.ts';
import { listTree } from './stamp.ts';
import type { PayloadProgressListener } from './progress.ts';

const gzipAsync = promisify(gzip);

/** Directories and nodes the kernel and init need before anything is mounted. */
export function baseEntries(): CpioEntry[] {
  return [
    { type: 'directory', path: 'dev', mode: 0o755 },
    // The kernel opens /dev/console for PID 1's stdio before init can mount
    // devtmpfs; without this node init starts with no console at all.
    { type: 'char-device', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
    { type: 'directory', path: 'proc', mode: 0o555 },
    { type: 'directory', path: 'sys', mode: 0o555 },
    { type: 'directory', path: 'run', mode: 0o755 },
    { type: 'directory', path: 'tmp', mode: 0o1777 },
    { type: 'directory', path: 'root', mode: 0o700 },
    { type: 'directory', path: 'mnt', mode: 0o755 },
    { type: 'directory', path: 'var', mode: 0o755 },
    { type: 'symlink', path: 'var/run', target: '../run' },
    { type: 'directory', path: 'var/log', mode: 0o755 },
  ];
}

/** Every applet the busybox binary was built with, as symlinks to it (made here so boot does not spend time on them). */
export function busyboxAppletLinks(busybox: string, archivePath: string): CpioEntry[] {
  const result = spawnSync(busybox, ['--list-full'], { encoding: 'utf8' });
  if (result.status !== 0 || !result.stdout) {
    throw new PayloadBuildError(`cannot list the applets of ${busybox}`, {
      hint: 'the payload is an x86-64 guest; build it on an x86-64 Linux machine',
      cause: result.error,
    });
  }
  return result.stdout
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && line !== archivePath)
    .map((path) => ({ type: 'symlink', path, target: `/${archivePath}` }) as const);
}

/** The files under payload/rootfs, keeping symlinks and the executable bit. */
export async function rootfsEntries(dir: string): Promise<CpioEntry[]> {
  const entries: CpioEntry[] = [];
  for (const rel of await listTree(dir)) {
    const path = posix.join(dir, rel);
    const info = await lstat(path);
    if (info.isSymbolicLink()) entries.push({ type: 'symlink', path: rel, target: await readlink(path) });
    else if (info.isFile()) entries.push({ type: 'file', path: rel, mode: info.mode & 0o111 ? 0o755 : 0o644, data: await readFile(path) });
  }
  return entries;
}

export async function payloadFileEntries(files: PayloadFile[]): Promise<CpioEntry[]> {
  return Promise.all(files.map(async (f) => ({ type: 'file', path: f.archivePath, mode: f.mode, data: await readFile(f.source) }) as const));
}

/**
 * Merges layers in increasing priority (later layers replace earlier ones at
 * the same path), so a file from payload/rootfs always beats a busybox applet
 * link of the same name, and a real binary beats an applet.
 */
export function mergeLayers(layers: CpioEntry[][]): CpioEntry[] {
  const byPath = new Map<string, CpioEntry>();
  for (const layer of layers) {
    for (const entry of layer) {
      const path = entry.path.replace(/^\/+/, '');
      const existing = byPath.get(path);
      if (existing?.type === 'directory' && entry.type === 'directory') continue;
      byPath.set(path, { ...entry, path });
    }
  }
  return [...byPath.values()];
}

export async function buildInitramfs(layers: CpioEntry[][], onProgress: PayloadProgressListener): Promise<Buffer> {
  const entries = withParentDirectories(mergeLayers(layers));
  onProgress({ step: 'archive', message: `writing ${entries.length} entries`, done: 0, total: entries.length });
  const chunks = writeCpio(entries);
  const raw = Buffer.concat(chunks);
  const compressed = await gzipAsync(raw, { level: zlibConstants.Z_BEST_COMPRESSION });
  onProgress({ step: 'archive', message: `${(raw.length / 1e6).toFixed(1)} MB -> ${(compressed.length / 1e6).toFixed(1)} MB gzip`, done: entries.length, total: entries.length });
  return compressed;
}
