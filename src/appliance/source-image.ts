// What a `files open` SOURCE is: an image file in one of the formats QEMU
// reads, or a block device. Told from the file's own header, never from its
// name, so a renamed qcow2 is still read as qcow2 (and a raw image that
// happens to be called .qcow2 as raw).
import { open, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { FilesError } from '../errors.ts';

export type SourceFormat = 'raw' | 'qcow2' | 'vmdk' | 'vhdx' | 'vdi';

export interface SourceImage {
  path: string;
  format: SourceFormat;
  blockDevice: boolean;
}

/** The format named by the first 512 bytes of an image. */
export function formatOfHeader(head: Buffer): SourceFormat {
  if (head.subarray(0, 4).equals(Buffer.from([0x51, 0x46, 0x49, 0xfb]))) return 'qcow2';
  if (head.subarray(0, 4).toString('latin1') === 'KDMV' || head.subarray(0, 21).toString('latin1') === '# Disk DescriptorFile') return 'vmdk';
  if (head.subarray(0, 8).toString('latin1') === 'vhdxfile') return 'vhdx';
  if (head.length >= 0x44 && head.readUInt32LE(0x40) === 0xbeda107f) return 'vdi';
  return 'raw';
}

export async function inspectSource(given: string): Promise<SourceImage> {
  const path = resolve(given);
  const info = await stat(path).catch((cause: unknown) => {
    throw new FilesError(`${given} does not exist or cannot be read`, { hint: 'give an image file (raw, qcow2, vmdk, vhdx, vdi) or a block device', cause });
  });
  if (info.isBlockDevice()) return { path, format: 'raw', blockDevice: true };
  if (!info.isFile())
    throw new FilesError(`${given} is neither an image file nor a block device`, { hint: 'give an image file or a block device such as /dev/sdb' });
  const handle = await open(path, 'r').catch((cause: unknown) => {
    throw new FilesError(`no permission to read ${given}`, { hint: 'a block device needs read access (the disk group on most Linux systems)', cause });
  });
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await handle.read(head, 0, 512, 0);
    return { path, format: formatOfHeader(head.subarray(0, bytesRead)), blockDevice: false };
  } finally {
    await handle.close();
  }
}
