// The backing-file name recorded in a qcow2 header, read without QEMU: how a
// user's system overlay says which base image it was made over; and its
// virtual size (what the per-user disk quota counts a disk at). The header
// is never encrypted (LUKS in qcow2 covers the data clusters only), so this
// needs no key. Layout: QEMU's docs/interop/qcow2.txt.
import { open } from 'node:fs/promises';

const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"

export class NotQcow2Error extends Error {}

/** The backing file name, or undefined when the image has none. Throws NotQcow2Error for anything that is not a qcow2 file. */
export async function qcow2BackingFile(path: string): Promise<string | undefined> {
  const handle = await open(path, 'r');
  try {
    const header = Buffer.alloc(72);
    const { bytesRead } = await handle.read(header, 0, header.length, 0);
    if (bytesRead < header.length || header.readUInt32BE(0) !== QCOW2_MAGIC) throw new NotQcow2Error(`${path} is not a qcow2 image`);
    const offset = header.readBigUInt64BE(8);
    const size = header.readUInt32BE(16);
    if (offset === 0n || size === 0) return undefined;
    // QEMU limits the name to 1023 bytes.
    if (size > 1023 || offset > 65536n) throw new NotQcow2Error(`${path}: its backing file name is out of bounds`);
    const name = Buffer.alloc(size);
    const read = await handle.read(name, 0, size, Number(offset));
    if (read.bytesRead !== size) throw new NotQcow2Error(`${path}: its header is truncated`);
    return name.toString('utf8');
  } finally {
    await handle.close();
  }
}

/** The image's virtual size in bytes (header bytes 24..31), or undefined when the file is not qcow2. */
export async function qcow2VirtualBytes(path: string): Promise<number | undefined> {
  const handle = await open(path, 'r');
  try {
    const header = Buffer.alloc(32);
    const { bytesRead } = await handle.read(header, 0, header.length, 0);
    if (bytesRead < header.length || header.readUInt32BE(0) !== QCOW2_MAGIC) return undefined;
    return Number(header.readBigUInt64BE(24));
  } finally {
    await handle.close();
  }
}
