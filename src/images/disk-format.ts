// What an import's FILE or DEVICE is, told from its bytes, never its name:
// the formats qemu-img reads (qcow2, vmdk monolithic or a split descriptor,
// vhdx, VHD, vdi), an OVA (a tar holding an OVF and its disks), a block
// device, or a raw disk, which must show a partition table or a file system
// to be taken for one (anything else is "not a disk image", not a raw disk).
import { open, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ImageError } from '../errors.ts';

export type DiskFormat = 'raw' | 'qcow2' | 'vmdk' | 'vhdx' | 'vpc' | 'vdi';

export type ImportSource =
  { kind: 'disk'; path: string; format: DiskFormat; blockDevice: boolean; bytes: number } | { kind: 'ova'; path: string; bytes: number };

/** The qemu-img format named by an image's first 512 bytes (and its last 512: a fixed VHD has only a footer); undefined: raw or unknown. */
export function formatOfBytes(head: Buffer, tail: Buffer): Exclude<DiskFormat, 'raw'> | 'ova' | undefined {
  const text = (buffer: Buffer, start: number, end: number) => buffer.subarray(start, end).toString('latin1');
  if (head.subarray(0, 4).equals(Buffer.from([0x51, 0x46, 0x49, 0xfb]))) return 'qcow2';
  if (text(head, 0, 4) === 'KDMV' || text(head, 0, 21) === '# Disk DescriptorFile') return 'vmdk';
  if (text(head, 0, 8) === 'vhdxfile') return 'vhdx';
  if (head.length >= 0x44 && head.readUInt32LE(0x40) === 0xbeda107f) return 'vdi';
  if (text(head, 0, 8) === 'conectix' || text(tail, 0, 8) === 'conectix') return 'vpc';
  if (text(head, 257, 262) === 'ustar') return 'ova';
  return undefined;
}

/** Does a raw disk's start look like a disk: an MBR/GPT signature or a file system's magic? */
export function looksLikeRawDisk(start: Buffer): boolean {
  const at = (offset: number, magic: string) =>
    start.length >= offset + magic.length && start.subarray(offset, offset + magic.length).toString('latin1') === magic;
  if (start.length >= 512 && start[510] === 0x55 && start[511] === 0xaa) return true; // MBR, protective MBR, FAT/NTFS boot sector
  if (at(512, 'EFI PART')) return true;
  if (start.length >= 1082 && start.readUInt16LE(1080) === 0xef53) return true; // ext2/3/4
  if (at(0, 'XFSB')) return true;
  if (at(0x10040, '_BHRfS_M')) return true; // btrfs
  if (at(0x8001, 'CD001')) return true; // ISO 9660
  return false;
}

/** Reads what FILE|DEVICE is; refuses (exit 40) what is neither an image nor a disk. */
export async function detectImportSource(given: string): Promise<ImportSource> {
  const path = resolve(given);
  const info = await stat(path).catch((cause: unknown) => {
    throw new ImageError('imageFormat', `${given} does not exist or cannot be read`, { cause, details: { reason: 'no-source' } });
  });
  if (!info.isFile() && !info.isBlockDevice())
    throw new ImageError('imageFormat', `${given} is neither an image file nor a block device`, { details: { reason: 'not-a-disk' } });
  const handle = await open(path, 'r').catch((cause: unknown) => {
    throw new ImageError('imageFormat', `no permission to read ${given}`, {
      hint: 'a block device needs read access (the disk group on most Linux systems)',
      cause,
      details: { reason: 'unreadable' },
    });
  });
  try {
    const bytes = info.isBlockDevice() ? await deviceBytes(handle) : info.size;
    const head = Buffer.alloc(0x10100);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    const tail = Buffer.alloc(512);
    if (bytes >= 512) await handle.read(tail, 0, 512, bytes - 512);
    const start = head.subarray(0, bytesRead);
    if (info.isBlockDevice()) return { kind: 'disk', path, format: 'raw', blockDevice: true, bytes };
    const format = formatOfBytes(start, tail);
    if (format === 'ova') return { kind: 'ova', path, bytes };
    if (format) return { kind: 'disk', path, format, blockDevice: false, bytes };
    if (bytes >= 1024 && looksLikeRawDisk(start)) return { kind: 'disk', path, format: 'raw', blockDevice: false, bytes };
    throw new ImageError('imageFormat', `${given} is not a disk image pocketvm knows (no image header, no partition table, no file system)`, {
      hint: 'import qcow2, vmdk, vhd, vhdx, vdi, raw or OVA files, or a whole disk',
      details: { reason: 'unknown-format' },
    });
  } finally {
    await handle.close();
  }
}

/** A block device's size: the end it seeks to (its stat size is 0). */
async function deviceBytes(handle: import('node:fs/promises').FileHandle): Promise<number> {
  let low = 0;
  let high = 1 << 20;
  const probe = Buffer.alloc(1);
  const readable = async (at: number) => (await handle.read(probe, 0, 1, at)).bytesRead === 1;
  while (await readable(high - 1)) high *= 2;
  while (high - low > 512) {
    const mid = Math.floor((low + high) / 1024) * 512;
    if (await readable(mid - 1)) low = mid;
    else high = mid;
  }
  return low;
}
