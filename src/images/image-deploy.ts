// `launcher image deploy IMAGE TARGET` (docs/image-store.md, "Deploy"):
// virtual to physical. A catalog image is written to a block device, or to a
// new raw, vmdk or vhdx file of a chosen size, with qemu-img's progress. A
// target larger than the image gets its last partition's table entry grown
// to the end (the file system inside is left as it is: it grows with its own
// tool, e.g. resize2fs, once booted). Refused before a byte is written: a
// target the image cannot fit (smaller than where its last partition ends),
// an existing file, and the stick itself (its device, the disk holding it,
// or a file on it) — a deploy there would overwrite the store it reads.
import { execFile } from 'node:child_process';
import { access, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import { ImageError } from '../errors.ts';
import type { StickLayout } from '../stick/layout.ts';
import type { CatalogImage } from './image-catalog.ts';
import type { ImageStore } from './image-store.ts';
import { lastWords, progressPercents, runQemuImg } from './qemu-img.ts';

const run = promisify(execFile);

export const DEPLOY_FORMATS = ['raw', 'vmdk', 'vhdx'] as const;
export type DeployFormat = (typeof DEPLOY_FORMATS)[number];

/** GPT keeps a backup header and entry array in the disk's last 33 sectors. */
const GPT_BACKUP_BYTES = 33 * 512;

export interface DeployEvents {
  step(message: string): void;
  progress(percent: number): void;
}

export interface DeployResult {
  image: string;
  sha256: string;
  target: string;
  kind: 'file' | 'device';
  format: DeployFormat;
  /** The target's virtual size. */
  bytes: number;
  /** Where the image's last partition ends: the least a target must hold. */
  usedBytes: number;
  /** The partition whose table entry was grown to the target's end, if any. */
  grownPartition?: number;
}

const refuse = (message: string, reason: string, details: Record<string, unknown> = {}, hint?: string) =>
  new ImageError('imageDeploy', message, { details: { reason, ...details }, ...(hint ? { hint } : {}) });

/** `--size`: bytes, or a number with K, M, G or T (binary; `iB`, `B` optional). */
export function parseDeploySize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (!match) throw refuse(`--size ${text}: not a size (say e.g. 4G, 512M or a number of bytes)`, 'bad-size');
  const power = ' kmgt'.indexOf((match[2] || ' ').toLowerCase());
  const bytes = Math.ceil(Number(match[1]) * 1024 ** power);
  // Every format here addresses whole sectors.
  return Math.ceil(bytes / 512) * 512;
}

/** The least a target must hold: where the last partition ends (plus GPT's backup), or the whole disk without a table. */
export function usedBytes(image: Pick<CatalogImage, 'virtualBytes' | 'partitionTable'>): number {
  const { kind, partitions } = image.partitionTable;
  if (kind === 'none' || partitions.length === 0) return image.virtualBytes;
  const end = Math.max(...partitions.map((p) => p.start + p.bytes));
  return kind === 'gpt' ? end + GPT_BACKUP_BYTES : end;
}

/** "major:minor" of a dev_t as Node gives it (Linux's encoding). */
function devName(dev: number): string {
  const major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff);
  const minor = (dev & 0xff) | ((dev >> 12) & ~0xff);
  return `${major}:${minor}`;
}

/** The block devices the stick lives on: its file system's device and, for a partition, the whole disk holding it. */
async function stickDevices(stickRoot: string): Promise<Set<string>> {
  const own = devName((await stat(stickRoot)).dev);
  const devices = new Set([own]);
  try {
    const sysfs = await realpath(`/sys/dev/block/${own}`);
    await access(join(sysfs, 'partition'));
    devices.add((await readFile(join(dirname(sysfs), 'dev'), 'utf8')).trim());
  } catch {
    // Not a partition (or no sysfs): the device itself is all there is.
  }
  return devices;
}

async function isMountPoint(dir: string): Promise<boolean> {
  const [own, parent] = await Promise.all([stat(dir), stat(resolve(dir, '..'))]);
  return own.dev !== parent.dev || own.ino === parent.ino;
}

interface Target {
  path: string;
  kind: 'file' | 'device';
  /** A device's size; a file's is chosen. */
  deviceBytes?: number;
}

/** What TARGET is, refusing the stick (its device, the disk under it, a file on it) and an existing file. */
async function resolveTarget(layout: StickLayout, target: string): Promise<Target> {
  const path = resolve(target);
  const stickRoot = await realpath(layout.root);
  const info = await stat(path).catch(() => undefined);
  if (info?.isBlockDevice()) {
    if ((await stickDevices(stickRoot)).has(devName(info.rdev)))
      throw refuse(`${path} is the device the stick ${layout.root} is on: deploying there would overwrite the stick`, 'stick', { target: path });
    const { stdout } = await run('blockdev', ['--getsize64', path]);
    return { path, kind: 'device', deviceBytes: Number(stdout.trim()) };
  }
  if (info)
    throw refuse(`${path} exists: deploy writes a new file (or a block device)`, 'exists', { target: path }, 'choose a new file name, or remove it first');
  const folder = await realpath(dirname(path)).catch(() => undefined);
  if (!folder) throw refuse(`${dirname(path)} is not a folder`, 'no-folder', { target: path });
  const real = join(folder, basename(path));
  // A file on the stick: under its root, or anywhere on its file system when the stick is a mount of its own.
  const onStick =
    real === stickRoot || real.startsWith(stickRoot + sep) || ((await stat(folder)).dev === (await stat(stickRoot)).dev && (await isMountPoint(stickRoot)));
  if (onStick) throw refuse(`${path} is on the stick ${layout.root}: deploy writes an image off the stick`, 'stick', { target: path });
  return { path: real, kind: 'file' };
}

function checked(step: string, result: { exitCode: number; stderr: string; stdout: string }): void {
  if (result.exitCode !== 0) throw refuse(`${step} failed: ${lastWords(result)}`, 'write-failed');
}

/**
 * Grows the last partition's table entry to the end of a raw disk (a file or
 * a device) with sfdisk; a GPT's backup header is moved to the new end first.
 * Returns the partition's number, or undefined when the disk has no table.
 */
async function growLastPartition(raw: string, image: Pick<CatalogImage, 'partitionTable'>): Promise<number | undefined> {
  const { kind, partitions } = image.partitionTable;
  if (kind === 'none' || partitions.length === 0) return undefined;
  const last = partitions.reduce((a, b) => (b.start + b.bytes > a.start + a.bytes ? b : a));
  const sfdisk = (args: string[], input?: string) =>
    new Promise<void>((done, fail) => {
      const child = execFile('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', ...args, raw], (error, _out, stderr) =>
        error ? fail(refuse(`growing partition ${last.number} failed: ${stderr.trim().split('\n').at(-1) ?? error.message}`, 'write-failed')) : done(),
      );
      child.stdin?.end(input ?? '');
    });
  if (kind === 'gpt') await sfdisk(['--relocate', 'gpt-bak-std']);
  await sfdisk(['-N', String(last.number)], ', +\n');
  return last.number;
}

export async function deployImage(
  layout: StickLayout,
  store: ImageStore,
  /** The image, looked up once the target is known to be allowed (the stick is refused first). */
  findImage: () => CatalogImage,
  target: string,
  options: { format?: DeployFormat; sizeBytes?: number },
  events: DeployEvents,
): Promise<DeployResult> {
  const format = options.format ?? 'raw';
  const resolved = await resolveTarget(layout, target);
  const image = findImage();
  const used = usedBytes(image);
  if (resolved.kind === 'device' && format !== 'raw')
    throw refuse(`${resolved.path} is a block device: it takes the image as it is (no --format)`, 'device-format', { target: resolved.path });
  if (resolved.kind === 'device' && options.sizeBytes !== undefined)
    throw refuse(`${resolved.path} is a block device: its size is its own (no --size)`, 'device-size', { target: resolved.path });
  const bytes = resolved.deviceBytes ?? options.sizeBytes ?? image.virtualBytes;
  if (bytes < used)
    throw refuse(
      `${image.name} needs ${used} bytes (its last partition ends there); ${resolved.path} would hold ${bytes}`,
      'too-small',
      { target: resolved.path, usedBytes: used, targetBytes: bytes },
      resolved.kind === 'file' ? `give --size ${Math.ceil(used / (1 << 20))}M or more` : 'choose a larger disk',
    );
  const source = store.fileOf(image);
  const size = await stat(source)
    .then((s) => s.size)
    .catch(() => undefined);
  if (size !== image.storedBytes)
    throw new ImageError('imageStore', `${image.name}: its store file ${size === undefined ? 'is missing' : 'is not the size its catalog row says'}`, {
      hint: 'remove it (launcher image rm NAME) and import it again',
      details: { reason: size === undefined ? 'missing' : 'size', file: source },
    });
  const convert = (args: string[]) =>
    runQemuImg(layout.root, ['convert', '-p', '-f', 'qcow2', ...args], (text) => progressPercents(text).forEach((p) => events.progress(p)));

  if (resolved.kind === 'device') {
    events.step(`writing ${image.name} to ${resolved.path} (${bytes} bytes)`);
    // -n: the device is there already; qemu-img writes the image's data and zeroes the rest of its extent.
    checked('qemu-img convert', await convert(['-n', '-O', 'raw', source, resolved.path]));
    const grown = bytes > used ? await growLastPartition(resolved.path, image) : undefined;
    await run('sync', []);
    return {
      image: image.name,
      sha256: image.sha256,
      target: resolved.path,
      kind: 'device',
      format,
      bytes,
      usedBytes: used,
      ...(grown ? { grownPartition: grown } : {}),
    };
  }

  // A file is made whole beside its final name and renamed into place: a failed deploy leaves nothing.
  const part = join(dirname(resolved.path), `.${basename(resolved.path)}.part-${process.pid}`);
  const raw = format === 'raw' ? part : `${part}.raw`;
  try {
    events.step(`writing ${image.name} to ${resolved.path} as ${format}, ${bytes} bytes`);
    checked('qemu-img convert', await convert(['-O', 'raw', '-S', '4k', source, raw]));
    let grown: number | undefined;
    if (bytes !== image.virtualBytes) {
      // Smaller: only free space past the last partition is cut (bytes >= used). Larger: the last partition reaches the new end.
      checked(
        'qemu-img resize',
        await runQemuImg(layout.root, ['resize', '-f', 'raw', ...(bytes < image.virtualBytes ? ['--shrink'] : []), raw, String(bytes)]),
      );
      if (bytes > used) grown = await growLastPartition(raw, image);
      else if (image.partitionTable.kind === 'gpt') await relocateGptBackup(raw);
    }
    if (format !== 'raw') {
      events.step(`converting to ${format}`);
      checked('qemu-img convert', await runQemuImg(layout.root, ['convert', '-f', 'raw', '-O', format, raw, part]));
      await rm(raw, { force: true });
    }
    await rename(part, resolved.path);
    return {
      image: image.name,
      sha256: image.sha256,
      target: resolved.path,
      kind: 'file',
      format,
      bytes,
      usedBytes: used,
      ...(grown ? { grownPartition: grown } : {}),
    };
  } catch (error) {
    await rm(part, { force: true });
    await rm(`${part}.raw`, { force: true });
    throw error;
  }
}

/** A GPT disk cut to its used size: its backup header goes to the new end (sfdisk rewrites both headers). */
async function relocateGptBackup(raw: string): Promise<void> {
  await run('sfdisk', ['--no-reread', '--no-tell-kernel', '-q', '--relocate', 'gpt-bak-std', raw]);
}
