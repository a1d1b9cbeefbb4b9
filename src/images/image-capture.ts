// `launcher image capture SOURCE` (docs/image-store.md, "Capture"): a system
// copied at the file level into a new image. SOURCE (a catalog image, an
// image file, a block device, or a folder tree) is hot-plugged read-only into
// the helper appliance; pocketvm-capture plans the new layout (the source's
// table type, partitions, file-system types and UUIDs; smaller: only what is
// used plus headroom), the launcher makes a sparse qcow2 of that size in
// images/incoming/ and plugs it writable; pocketvm-capture partitions and
// formats it, copies the files (owners, modes, ACLs, xattrs, hard links,
// symlinks, holes: GNU tar), installs the bootloader and checks the fstab.
// Then the boot check (boot-check.ts) boots it in a throwaway overlay, and
// only then does it enter the store as an import does (importCaptured). Any
// failure removes every scratch file: the store and the catalog are as they
// were. A folder tree is first made into a read-only ext4 file system by
// mke2fs -d (which keeps owners, modes, xattrs and hard links), since the
// appliance opens disks, not host folders.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { rm, stat, truncate } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { applianceExec, applianceRequest } from '../appliance/appliance-client.ts';
import type { ApplianceAddress } from '../appliance/appliance-protocol.ts';
import { CaptureError, PocketError } from '../errors.ts';
import type { StickLayout } from '../stick/layout.ts';
import { bootCheck, type BootCheckResult } from './boot-check.ts';
import { detectImportSource } from './disk-format.ts';
import { importCaptured, type ImportedImage } from './image-import.ts';
import { IMAGE_NAME_PATTERN, imageNameFor, type ImageStore } from './image-store.ts';
import { lastWords, runQemuImg } from './qemu-img.ts';

const run = promisify(execFile);
const CAPTURE = '/usr/bin/pocketvm-capture';
/** Generous: under TCG on a loaded host the kernel's banner can take minutes. */
const BOOT_CHECK_MS = 600_000;

export interface CaptureOptions {
  name?: string;
  smaller: boolean;
}

export interface CaptureEvents {
  step(message: string): void;
  /** Bytes copied of partition N's files (total: what du counted on the source). */
  progress(partition: number, copied: number, total: number): void;
}

export interface PlannedPartition {
  number: number;
  start: number;
  sectors: number;
  how: 'files' | 'bytes';
  type: string | null;
  uuid: string | null;
}

export interface CapturePlan {
  bytes: number;
  table: string;
  partitions: PlannedPartition[];
}

export interface CapturedImage extends ImportedImage {
  capturedFrom: string;
  plan: CapturePlan;
  firmware: string;
  bootCheck: BootCheckResult;
  /** fstab UUID= entries that name no file system of the new disk. */
  fstabMissing: string[];
  sourceVirtualBytes: number;
}

interface CaptureSource {
  path: string;
  format: string;
  display: string;
  bytes: number;
  /** A file this capture made (a folder's file system): removed at the end. */
  scratch?: string;
}

const dash = (value: string | undefined) => (value === undefined || value === '-' ? null : value);

/** pocketvm-capture's `disk` and `part` lines. */
export function parsePlan(text: string): CapturePlan {
  const disk = /^disk (\d+) (\S+)$/m.exec(text);
  if (!disk) throw new Error(`pocketvm-capture printed no plan: ${JSON.stringify(text.slice(0, 200))}`);
  const partitions = [...text.matchAll(/^part (\d+) (\d+) (\d+) (files|bytes) (\S+) (\S+)$/gm)].map((m) => ({
    number: Number(m[1]),
    start: Number(m[2]),
    sectors: Number(m[3]),
    how: m[4] as 'files' | 'bytes',
    type: dash(m[5]),
    uuid: dash(m[6]),
  }));
  return { bytes: Number(disk[1]), table: disk[2]!, partitions };
}

/** Runs pocketvm-capture in the appliance; stderr's progress lines go to `onProgress`, the rest is kept for the error. */
async function capture(
  layout: StickLayout,
  address: ApplianceAddress,
  args: string[],
  onProgress: (partition: number, checkpoint: string, total: number) => void,
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  let partial = '';
  const exec = await applianceExec(layout, address, [CAPTURE, ...args], {
    stdout: (data) => ((stdout += data.toString('utf8')), true),
    stderr: (data) => {
      partial += data.toString('utf8');
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        const m = /progress (\d+) (\S+) (\d+)/.exec(line);
        if (m) onProgress(Number(m[1]), m[2]!, Number(m[3]));
        else stderr += `${line}\n`;
      }
      return true;
    },
  });
  exec.end();
  const outcome = await exec.outcome;
  const exitCode = outcome.kind === 'exit' ? (outcome.signal ? 128 + outcome.signal : outcome.exitCode) : 1;
  return { exitCode, stdout, stderr: outcome.kind === 'failed' ? outcome.message : stderr + partial };
}

const lastLine = (text: string, fallback: string) => text.trim().split('\n').at(-1) || fallback;

async function resolveSource(store: ImageStore, given: string, scratchBase: string, events: CaptureEvents): Promise<CaptureSource> {
  const image = store.catalog.find(given);
  if (image) return { path: store.fileOf(image), format: 'qcow2', display: `image ${image.name} (sha256 ${image.sha256})`, bytes: image.virtualBytes };
  const path = resolve(given);
  const info = await stat(path).catch(() => undefined);
  if (!info)
    throw new CaptureError('captureSource', `${given} is neither an image in the catalog nor a file, disk or folder`, { details: { reason: 'no-source' } });
  if (info.isDirectory()) return folderSource(path, scratchBase, events);
  const source = await detectImportSource(path).catch((cause: unknown) => {
    throw new CaptureError('captureSource', `${given}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause, details: { reason: 'no-source' } });
  });
  if (source.kind === 'ova')
    throw new CaptureError('captureSource', `${given} is an OVA: import it first (launcher image import ${given}), then capture the image`, {
      details: { reason: 'ova' },
    });
  return { path: source.path, format: source.format, display: source.path, bytes: source.bytes };
}

/** A folder tree as an ext4 file system (mke2fs -d: owners, modes, xattrs, hard links, symlinks), read-only to the appliance. */
async function folderSource(folder: string, scratchBase: string, events: CaptureEvents): Promise<CaptureSource> {
  events.step(`making a file system of the folder ${folder}`);
  const used = Number((await run('du', ['-sxk', folder])).stdout.split('\t')[0]);
  const file = `${scratchBase}.folder.ext4`;
  const bytes = Math.ceil((used * 1.25 + 65536) / 1024) * (1 << 20);
  closeSync(openSync(file, 'w'));
  await truncate(file, bytes);
  try {
    await run('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', 'root', '-d', folder, file]);
  } catch (cause) {
    await rm(file, { force: true });
    const stderr = (cause as { stderr?: string }).stderr ?? '';
    throw new CaptureError('captureSource', `the folder ${folder} cannot be made into a file system: ${lastLine(stderr, 'mke2fs failed')}`, {
      cause,
      details: { reason: 'unsupported' },
    });
  }
  return { path: file, format: 'raw', display: folder, bytes, scratch: file };
}

function copyFailure(result: { exitCode: number; stderr: string }, step: string): CaptureError {
  const line = lastLine(result.stderr, `${step} failed (exit ${result.exitCode})`);
  // pocketvm-capture's exit codes (its header): 4 a layout it cannot rebuild, 5 too small, 6 copy, 7 bootloader.
  if (result.exitCode === 4 || result.exitCode === 3)
    return new CaptureError('captureSource', `cannot capture: ${line}`, { details: { reason: 'unsupported' } });
  const reason = { 5: 'too-small', 7: 'bootloader' }[result.exitCode] ?? 'copy';
  return new CaptureError('captureCopy', `${step}: ${line}`, { details: { reason } });
}

export async function captureImage(
  layout: StickLayout,
  store: ImageStore,
  address: ApplianceAddress,
  given: string,
  options: CaptureOptions,
  events: CaptureEvents,
): Promise<CapturedImage> {
  if (options.name !== undefined && !IMAGE_NAME_PATTERN.test(options.name))
    throw new CaptureError('captureSource', `"${options.name}" is not an image name`, {
      hint: 'image names are 1 to 40 lower-case letters, digits and -, starting with a letter',
      details: { reason: 'bad-name' },
    });
  if (options.name !== undefined && store.catalog.nameTaken(options.name))
    throw new CaptureError('captureSource', `an image named ${options.name} is in the catalog already`, {
      hint: 'give another --name',
      details: { reason: 'name-taken' },
    });
  const scratchBase = join(store.paths.incoming, `${process.pid}-${randomBytes(6).toString('hex')}`);
  const newDisk = `${scratchBase}.capture.qcow2`;
  const overlay = `${scratchBase}.check.qcow2`;
  const source = await resolveSource(store, given, scratchBase, events);
  const mode = options.smaller ? 'smaller' : 'same';
  const plugged: number[] = [];
  const plug = async (path: string, format: string, readOnly: boolean) => {
    const { target } = await applianceRequest(layout, address, 'plug', { source: path, format, readOnly });
    plugged.push(target);
    return target;
  };
  const unplug = async (target: number) => {
    plugged.splice(plugged.indexOf(target), 1);
    await applianceRequest(layout, address, 'unplug', { target });
  };
  try {
    events.step(`reading ${basename(source.display)}'s layout in the appliance (read-only)`);
    const from = await plug(source.path, source.format, true);
    const planned = await capture(layout, address, ['plan', String(from), mode], () => {});
    if (planned.exitCode !== 0) throw copyFailure(planned, 'planning');
    const plan = parsePlan(planned.stdout);
    events.step(
      `new disk: ${plan.table}, ${(plan.bytes / (1 << 20)).toFixed(0)} MiB virtual (${plan.partitions.map((p) => `${p.number === 0 ? 1 : p.number} ${p.type ?? 'data'} ${(p.sectors / 2048).toFixed(0)} MiB`).join(', ')})`,
    );
    const created = await runQemuImg(layout.root, ['create', '-q', '-f', 'qcow2', newDisk, String(plan.bytes)]);
    if (created.exitCode !== 0) throw new CaptureError('captureCopy', `the new disk cannot be made: ${lastWords(created)}`, { details: { reason: 'copy' } });
    const to = await plug(newDisk, 'qcow2', false);
    const copied = await capture(layout, address, ['copy', String(from), String(to), mode], (partition, checkpoint, total) =>
      events.progress(partition, checkpoint === 'done' ? total : Math.min(total, Number(checkpoint) * 10240), total),
    );
    await unplug(to);
    await unplug(from);
    if (copied.exitCode !== 0) throw copyFailure(copied, 'copying');
    const firmware = /^firmware (\S+)$/m.exec(copied.stdout)?.[1] ?? 'none';
    const fstabMissing = [...copied.stdout.matchAll(/^fstab missing (\S+)$/gm)].map((m) => m[1]!);
    if (firmware === 'none')
      throw new CaptureError(
        'captureBootCheck',
        `${basename(source.display)} has no bootloader capture can make right (no GRUB for BIOS, no EFI binary on an ESP)`,
        {
          details: { reason: 'no-bootloader' },
        },
      );

    events.step(`boot check (${firmware === 'uefi' ? 'UEFI' : 'BIOS'}) in a throwaway overlay`);
    const made = await runQemuImg(layout.root, ['create', '-q', '-f', 'qcow2', '-b', newDisk, '-F', 'qcow2', overlay]);
    if (made.exitCode !== 0) throw new CaptureError('captureBootCheck', `the boot check's overlay cannot be made: ${lastWords(made)}`);
    const check = await plug(overlay, 'qcow2', false);
    const serial = await capture(layout, address, ['serial', String(check)], () => {});
    await unplug(check);
    if (serial.exitCode !== 0)
      throw new CaptureError('captureBootCheck', `the boot check cannot prepare the overlay: ${lastLine(serial.stderr, 'failed')}`, {
        details: { reason: 'no-grub-cfg' },
      });
    const checked = await bootCheck(layout.root, overlay, firmware === 'uefi' ? 'uefi' : 'bios', scratchBase, BOOT_CHECK_MS);
    await rm(overlay, { force: true });
    events.step(`the kernel started after ${(checked.ms / 1000).toFixed(1)} s: ${checked.banner.slice(0, 60)}…`);

    events.step('into the store: hashing and cataloguing');
    const name = options.name ?? imageNameFor(`${basename(source.display)}-captured`, (n) => store.catalog.nameTaken(n));
    const imported = await importCaptured(layout, store, newDisk, `captured from ${source.display}`, source.bytes, name, {
      step: () => {},
      progress: () => {},
    });
    return { ...imported, capturedFrom: source.display, plan, firmware, bootCheck: checked, fstabMissing, sourceVirtualBytes: source.bytes };
  } catch (error) {
    // QEMU refusing to open the source (a plug failure, `files`' 20) is the source's fault: this command's 45.
    if (error instanceof PocketError && error.exit === 'files')
      throw new CaptureError('captureSource', error.message, { cause: error, details: { reason: 'unreadable' } });
    if (error instanceof PocketError) throw error;
    throw new CaptureError('captureCopy', `capture failed: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
      details: { reason: 'copy' },
    });
  } finally {
    for (const target of [...plugged]) await unplug(target).catch(() => {});
    await rm(newDisk, { force: true });
    await rm(overlay, { force: true });
    if (source.scratch) await rm(source.scratch, { force: true });
  }
}
