// An image guest's base checked block by block (docs/images.md, "How the base
// is checked"): the build writes `base-<sha256>.blocks`, the sha256 of each
// BLOCK_BYTES block of the base one after another, and the manifest names that
// file's own sha256 (the root). A launch reads and checks the list (about 1 MiB
// for a 2 GiB base) instead of the whole base; the launcher then serves the
// base to QEMU itself and checks every block it hands over against the list
// (src/session/verified-base.ts), so a changed byte is never given to the guest.
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SystemImageError } from '../errors.ts';

/** 64 KiB: the list stays small (32 bytes per block) and a guest's 4–128 KiB reads cover one or two blocks. */
export const BLOCK_BYTES = 64 * 1024;
const DIGEST_BYTES = 32;

export interface BlockHashesEntry {
  file: string;
  /** sha256 of the list file: the root every block is checked against. */
  sha256: string;
  blockBytes: number;
}

/** The checked list, held in memory for the session (never read again from the stick). */
export interface BlockHashes {
  blockBytes: number;
  bytes: number;
  count: number;
  digest(index: number): Buffer;
}

export function blockHashesFileName(baseSha256: string): string {
  return `base-${baseSha256}.blocks`;
}

/** The list for a base file (build time): its bytes and their sha256. */
export async function computeBlockHashes(path: string, blockBytes = BLOCK_BYTES): Promise<{ list: Buffer; sha256: string }> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const count = Math.ceil(size / blockBytes);
    const list = Buffer.alloc(count * DIGEST_BYTES);
    const buffer = Buffer.alloc(blockBytes);
    for (let index = 0; index < count; index++) {
      const length = Math.min(blockBytes, size - index * blockBytes);
      const { bytesRead } = await handle.read(buffer, 0, length, index * blockBytes);
      if (bytesRead !== length) throw new Error(`${path} changed while its blocks were hashed`);
      createHash('sha256').update(buffer.subarray(0, length)).digest().copy(list, index * DIGEST_BYTES);
    }
    return { list, sha256: createHash('sha256').update(list).digest('hex') };
  } finally {
    await handle.close();
  }
}

function corrupt(path: string, why: string, details: Record<string, unknown>): SystemImageError {
  return new SystemImageError(`the base image's block list ${path} is corrupt: ${why}`, {
    hint: 'copy the guest onto the stick again (`launcher init-stick DIR --guest NAME`); nothing was changed',
    details: { reason: 'corrupt', file: path, ...details },
  });
}

/** Reads the list and checks it against the manifest's root and the base's size. */
export async function loadBlockHashes(dir: string, entry: BlockHashesEntry, bytes: number): Promise<BlockHashes> {
  const path = join(dir, entry.file);
  let list: Buffer;
  try {
    list = await readFile(path);
  } catch {
    throw new SystemImageError(`the base image's block list ${path} is missing`, {
      hint: 'copy the guest onto the stick again (`launcher init-stick DIR --guest NAME`)',
      details: { reason: 'missing', file: path },
    });
  }
  const actual = createHash('sha256').update(list).digest('hex');
  if (actual !== entry.sha256) throw corrupt(path, 'its sha256 is not the one its manifest names', { expected: entry.sha256, actual });
  const count = Math.ceil(bytes / entry.blockBytes);
  if (list.length !== count * DIGEST_BYTES) throw corrupt(path, `${list.length} bytes, not ${count * DIGEST_BYTES}`, { bytes: list.length });
  return {
    blockBytes: entry.blockBytes,
    bytes,
    count,
    digest: (index) => list.subarray(index * DIGEST_BYTES, (index + 1) * DIGEST_BYTES),
  };
}

/** True when `data` is block `index` of the base the list was made from. */
export function blockMatches(hashes: BlockHashes, index: number, data: Buffer): boolean {
  const expectedLength = Math.min(hashes.blockBytes, hashes.bytes - index * hashes.blockBytes);
  if (index < 0 || index >= hashes.count || data.length !== expectedLength) return false;
  return createHash('sha256').update(data).digest().equals(hashes.digest(index));
}
