// The guest-visible content of a stored qcow2, read without QEMU running:
// `qemu-img map` says, for each extent of the virtual disk, whether it holds
// data and where in the file (qcow2 made by qemu-img convert: uncompressed,
// unencrypted, so a data extent is plain bytes at a file offset); the rest
// reads as zeros. The store names an image by the sha256 of this content, the
// bytes a guest would read from the whole disk, so the same disk imported as
// vmdk and as vdi is one image.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { lastWords, runQemuImg } from './qemu-img.ts';

export interface Extent {
  start: number;
  length: number;
  data: boolean;
  offset?: number;
}

export async function mapExtents(stickRoot: string, file: string): Promise<Extent[]> {
  const result = await runQemuImg(stickRoot, ['map', '--output=json', '-f', 'qcow2', file]);
  if (result.exitCode !== 0) throw new Error(`qemu-img map ${file}: ${lastWords(result)}`);
  return (JSON.parse(result.stdout) as Extent[]).map(({ start, length, data, offset }) => ({
    start,
    length,
    data,
    ...(offset === undefined ? {} : { offset }),
  }));
}

const CHUNK = 4 << 20;
const ZEROS = Buffer.alloc(CHUNK);

/** sha256 of the virtual disk, front to back. */
export async function contentSha256(file: string, extents: Extent[]): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(CHUNK);
    for (const extent of extents) {
      for (let done = 0; done < extent.length;) {
        const n = Math.min(CHUNK, extent.length - done);
        if (extent.data) {
          if (extent.offset === undefined) throw new Error(`${file}: a data extent at ${extent.start} has no file offset (compressed?)`);
          const { bytesRead } = await handle.read(buffer, 0, n, extent.offset + done);
          if (bytesRead !== n) throw new Error(`${file} ends inside its own data`);
          hash.update(buffer.subarray(0, n));
        } else hash.update(ZEROS.subarray(0, n));
        done += n;
      }
    }
    return hash.digest('hex');
  } finally {
    await handle.close();
  }
}

/** `length` bytes of the virtual disk from `start`. */
export async function readVirtual(file: string, extents: Extent[], start: number, length: number): Promise<Buffer> {
  const out = Buffer.alloc(length);
  const handle = await open(file, 'r');
  try {
    for (const extent of extents) {
      const from = Math.max(start, extent.start);
      const to = Math.min(start + length, extent.start + extent.length);
      if (from >= to || !extent.data || extent.offset === undefined) continue;
      await handle.read(out, from - start, to - from, extent.offset + (from - extent.start));
    }
    return out;
  } finally {
    await handle.close();
  }
}

/** sha256 of a file's bytes (the stored qcow2 itself: what `image verify` would recheck). */
export async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(file, 'r');
  try {
    for await (const chunk of handle.createReadStream({ highWaterMark: CHUNK })) hash.update(chunk as Buffer);
  } finally {
    await handle.close().catch(() => {});
  }
  return hash.digest('hex');
}
