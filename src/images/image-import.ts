// `launcher image import FILE|DEVICE` (docs/image-store.md): the source is
// told from its bytes, checked (`qemu-img info`, `qemu-img check` where its
// format has one), converted to a sparse qcow2 in images/incoming/ with
// qemu-img's progress, hashed by its guest-visible content, its partition
// table read; only then is it renamed into images/store/ and its catalog row
// written, in one transaction. A failure at any step removes the incoming
// file: the store and catalog are as they were. A process killed between the
// rename and the row leaves a store file no row names; the next import of the
// same content takes it over (same name, same bytes).
import { randomBytes } from 'node:crypto';
import { open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ImageError } from '../errors.ts';
import type { StickLayout } from '../stick/layout.ts';
import type { CatalogImage } from './image-catalog.ts';
import { IMAGE_NAME_PATTERN, imageNameFor, type ImageStore } from './image-store.ts';
import { detectImportSource, type DiskFormat } from './disk-format.ts';
import { readOva } from './ova.ts';
import { PartitionTableError, readPartitionTable } from './partition-table.ts';
import { lastWords, progressPercents, runQemuImg } from './qemu-img.ts';
import { contentSha256, fileSha256, mapExtents, readVirtual } from './virtual-disk.ts';

/** Formats qemu-img check knows; the others (raw, vpc) are checked by info and the partition table alone. */
const CHECKABLE: ReadonlySet<DiskFormat> = new Set(['qcow2', 'vmdk', 'vhdx', 'vdi']);

export interface ImportEvents {
  step(message: string): void;
  progress(percent: number): void;
}

export interface ImportedImage {
  name: string;
  sha256: string;
  format: string;
  source: string;
  member?: string;
  virtualBytes: number;
  storedBytes: number;
  /** Blocks the store file takes on disk, in bytes (below virtualBytes: sparse). */
  allocatedBytes: number;
  partitionTable: string;
  /** The same content was in the store already: only its provenance was added. */
  deduplicated: boolean;
}

export interface DiskInput {
  spec: string;
  format: DiskFormat;
  display: string;
  member?: string;
  sourceBytes: number;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Incoming files of imports whose process is gone (killed mid-import). */
async function sweepIncoming(store: ImageStore): Promise<void> {
  for (const entry of await readdir(store.paths.incoming)) {
    const pid = Number(/^(\d+)-/.exec(entry)?.[1]);
    if (pid && !pidAlive(pid)) await rm(join(store.paths.incoming, entry), { force: true });
  }
}

async function checkDisk(root: string, input: DiskInput): Promise<{ virtualBytes: number }> {
  const formatArgs = input.spec.startsWith('json:') ? [] : ['-f', input.format];
  const info = await runQemuImg(root, ['info', '--output=json', ...formatArgs, input.spec]);
  if (info.exitCode !== 0)
    throw new ImageError('imageFormat', `${input.display} cannot be read as ${input.format}: ${lastWords(info)}`, { details: { reason: 'corrupt' } });
  const virtualBytes = (JSON.parse(info.stdout) as { 'virtual-size': number })['virtual-size'];
  if (CHECKABLE.has(input.format)) {
    const check = await runQemuImg(root, ['check', ...formatArgs, input.spec]);
    // 0 clean, 3 leaked clusters only (harmless to a reader); 63: no check for this format.
    if (![0, 3, 63].includes(check.exitCode))
      throw new ImageError('imageFormat', `${input.display} is damaged: qemu-img check says ${lastWords(check)}`, {
        hint: 'repair it where it came from (qemu-img check -r all on a copy), then import again',
        details: { reason: 'corrupt', check: check.stdout.trim() },
      });
  }
  return { virtualBytes };
}

/** One disk into the store (checked, converted, hashed, its row written); also `image customize`'s new image. */
export async function importDisk(
  layout: StickLayout,
  store: ImageStore,
  input: DiskInput,
  name: string | undefined,
  events: ImportEvents,
): Promise<ImportedImage> {
  const root = layout.root;
  events.step(`checking ${input.display} (${input.format})`);
  const { virtualBytes } = await checkDisk(root, input);
  const incoming = join(store.paths.incoming, `${process.pid}-${randomBytes(6).toString('hex')}.qcow2`);
  try {
    events.step(`converting to a sparse qcow2 (${(virtualBytes / (1 << 20)).toFixed(0)} MiB virtual)`);
    const formatArgs = input.spec.startsWith('json:') ? [] : ['-f', input.format];
    const converted = await runQemuImg(root, ['convert', '-p', ...formatArgs, '-O', 'qcow2', input.spec, incoming], (text) => {
      for (const percent of progressPercents(text)) events.progress(percent);
    });
    if (converted.exitCode !== 0)
      throw new ImageError('imageFormat', `${input.display} could not be converted: ${lastWords(converted)}`, { details: { reason: 'corrupt' } });
    events.step('hashing its content and reading its partition table');
    const extents = await mapExtents(root, incoming);
    const table = await readPartitionTable((offset, length) => readVirtual(incoming, extents, offset, length), virtualBytes).catch((cause: unknown) => {
      if (cause instanceof PartitionTableError)
        throw new ImageError('imageFormat', `${input.display} has a damaged partition table: ${cause.message}`, {
          cause,
          details: { reason: 'partition-table' },
        });
      throw cause;
    });
    const sha256 = await contentSha256(incoming, extents);
    const importedAt = new Date().toISOString();
    const provenance = {
      source: input.display,
      format: input.format,
      ...(input.member ? { member: input.member } : {}),
      sourceBytes: input.sourceBytes,
      importedAt,
    };
    const existing = store.catalog.byHash(sha256);
    if (existing) {
      await rm(incoming, { force: true });
      store.catalog.addImport(sha256, provenance);
      return result(existing, input, true, await allocated(store.fileOf(existing)));
    }
    const chosen = name ?? imageNameFor(input.display, (n) => store.catalog.nameTaken(n));
    if (store.catalog.nameTaken(chosen))
      throw new ImageError('imageFormat', `an image named ${chosen} is in the catalog already`, {
        hint: 'give another --name',
        details: { reason: 'name-taken' },
      });
    const handle = await open(incoming, 'r+');
    await handle.sync();
    await handle.close();
    const file = `${sha256}.qcow2`;
    const image: Omit<CatalogImage, 'imports'> = {
      name: chosen,
      sha256,
      file,
      fileSha256: await fileSha256(incoming),
      virtualBytes,
      storedBytes: (await stat(incoming)).size,
      partitionTable: table,
      createdAt: importedAt,
    };
    await rename(incoming, store.fileOf(image));
    await syncDir(store.paths.store);
    try {
      store.catalog.add(image, provenance);
    } catch (error) {
      // Another import of the same content got its row in first: this one is its provenance.
      const raced = store.catalog.byHash(sha256);
      if (!raced) throw error;
      store.catalog.addImport(sha256, provenance);
      return result(raced, input, true, await allocated(store.fileOf(raced)));
    }
    return result({ ...image, imports: [] }, input, false, await allocated(store.fileOf(image)));
  } finally {
    await rm(incoming, { force: true });
  }
}

function result(image: Omit<CatalogImage, 'imports'> & { imports: unknown[] }, input: DiskInput, deduplicated: boolean, allocatedBytes: number): ImportedImage {
  return {
    name: image.name,
    sha256: image.sha256,
    format: input.format,
    source: input.display,
    ...(input.member ? { member: input.member } : {}),
    virtualBytes: image.virtualBytes,
    storedBytes: image.storedBytes,
    allocatedBytes,
    partitionTable: image.partitionTable.kind,
    deduplicated,
  };
}

async function allocated(file: string): Promise<number> {
  return (await stat(file)).blocks * 512;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r').catch(() => undefined);
  if (!handle) return;
  await handle.sync().catch(() => {});
  await handle.close();
}

/** A split vmdk's size: its descriptor and every extent file it names (`RW 4192256 SPARSE "x-s001.vmdk"`). */
async function vmdkBytes(path: string, bytes: number): Promise<number> {
  const handle = await open(path, 'r');
  const head = Buffer.alloc(Math.min(bytes, 64 << 10));
  await handle.read(head, 0, head.length, 0);
  await handle.close();
  const text = head.toString('latin1');
  if (!text.startsWith('# Disk DescriptorFile')) return bytes;
  let total = bytes;
  for (const match of text.matchAll(/^(?:RW|RDONLY|NOACCESS)\s+\d+\s+\w+\s+"([^"]+)"/gm))
    total += await stat(join(dirname(path), match[1]!)).then(
      (info) => info.size,
      () => 0,
    );
  return total;
}

/** Imports FILE|DEVICE (every disk of an OVA); the images it added or found already stored. */
export async function importImage(
  layout: StickLayout,
  store: ImageStore,
  given: string,
  options: { name?: string },
  events: ImportEvents,
): Promise<ImportedImage[]> {
  if (options.name !== undefined && !IMAGE_NAME_PATTERN.test(options.name))
    throw new ImageError('imageFormat', `"${options.name}" is not an image name`, {
      hint: 'image names are 1 to 40 lower-case letters, digits and -, starting with a letter',
      details: { reason: 'bad-name' },
    });
  const source = await detectImportSource(given);
  await sweepIncoming(store);
  if (source.kind === 'disk') {
    const sourceBytes = source.format === 'vmdk' ? await vmdkBytes(source.path, source.bytes) : source.bytes;
    const input = { spec: source.path, format: source.format, display: source.path, sourceBytes };
    return [await importDisk(layout, store, input, options.name, events)];
  }
  events.step(`reading the OVA ${basename(source.path)}`);
  const ova = await readOva(source.path);
  const imported: ImportedImage[] = [];
  for (const [i, disk] of ova.disks.entries()) {
    const name = options.name === undefined ? undefined : i === 0 ? options.name : `${options.name}-${i + 1}`;
    const input = { spec: disk.spec, format: disk.format, display: source.path, member: disk.member, sourceBytes: disk.bytes };
    imported.push(await importDisk(layout, store, input, name, events));
  }
  return imported;
}

/**
 * A captured image (image-capture.ts) into the store the way an import goes
 * in: checked, converted, hashed, renamed, one transaction; its provenance's
 * source says what it was captured from.
 */
export function importCaptured(
  layout: StickLayout,
  store: ImageStore,
  file: string,
  display: string,
  sourceBytes: number,
  name: string | undefined,
  events: ImportEvents,
): Promise<ImportedImage> {
  return importDisk(layout, store, { spec: file, format: 'qcow2', display, sourceBytes }, name, events);
}
