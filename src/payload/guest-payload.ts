// A guest's payload on the stick: manifest + kernel + initrd, checked against
// the SHA256SUMS the payload build wrote, so a corrupt or half-copied file is
// reported by name before QEMU ever sees it.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PayloadError, SystemImageError } from '../errors.ts';
import { type BlockHashes, loadBlockHashes } from './base-blocks.ts';
import { type GuestManifest, loadManifest } from './guest-manifest.ts';

export interface GuestPayload {
  dir: string;
  manifest: GuestManifest;
  kernel: string;
  initrd: string;
  /** An image guest's read-only base, checked against the manifest's sha256 (docs/images.md). */
  base?: BaseImage;
}

export interface BaseImage {
  path: string;
  sha256: string;
  bytes: number;
  /** The image's init, started by the payload's initramfs after switch_root. */
  init: string;
  /**
   * The checked list of its blocks' hashes: the launcher serves the base to
   * QEMU and checks each block as it is read (src/session/verified-base.ts).
   * Without it (an older base, a manifest without `blocks`) the whole base was
   * hashed before the launch went on.
   */
  blocks?: BlockHashes;
}

export const CHECKSUM_FILE = 'SHA256SUMS';

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export function parseChecksums(text: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([0-9a-f]{64}) [ *](.+)$/.exec(line.trim());
    if (match) sums.set(match[2]!, match[1]!);
  }
  return sums;
}

async function readChecksums(dir: string): Promise<Map<string, string>> {
  const path = join(dir, CHECKSUM_FILE);
  try {
    return parseChecksums(await readFile(path, 'utf8'));
  } catch {
    throw new PayloadError(`the payload in ${dir} has no ${CHECKSUM_FILE}: it was never fully built or copied`, {
      hint: 'build it with `node build.js payload` (dev checkout) or recreate the stick with `launcher init-stick`',
    });
  }
}

async function verifyFile(dir: string, name: string, sums: Map<string, string>): Promise<string> {
  const path = join(dir, name);
  const expected = sums.get(name);
  if (!expected) throw new PayloadError(`${CHECKSUM_FILE} in ${dir} does not list ${name}`, { hint: 'rebuild the payload with `node build.js payload --force`' });
  try {
    await stat(path);
  } catch {
    throw new PayloadError(`payload file ${path} is missing`, { hint: 'rebuild the payload with `node build.js payload`, or recreate the stick with `launcher init-stick`' });
  }
  const actual = await sha256File(path);
  if (actual !== expected) {
    throw new PayloadError(`payload file ${path} is corrupt (sha256 does not match ${CHECKSUM_FILE})`, {
      hint: 'copy a good payload onto the stick again (`launcher init-stick`) or rebuild it with `node build.js payload --force`',
      details: { file: path, expected, actual },
    });
  }
  return path;
}

/**
 * `base: 'full'` hashes an image guest's whole base (init-stick, before and
 * after a copy); a launch checks only its block list and leaves the blocks to
 * be checked as the guest reads them.
 */
export async function openGuestPayload(payloadRoot: string, guest: string, options: { base?: 'full' | 'blocks' } = {}): Promise<GuestPayload> {
  const dir = join(payloadRoot, guest);
  const manifest = await loadManifest(dir);
  if (manifest.name !== guest) {
    throw new PayloadError(`${join(dir, 'guest.json')} names the guest "${manifest.name}" but lives in the folder "${guest}"`, {
      hint: 'the folder name and the manifest name must be the same',
    });
  }
  const sums = await readChecksums(dir);
  const [kernel, initrd] = await Promise.all([verifyFile(dir, manifest.kernel, sums), verifyFile(dir, manifest.initrd, sums)]);
  const base = manifest.image ? await verifyBase(dir, manifest.image, options.base ?? 'blocks') : undefined;
  return { dir, manifest, kernel, initrd, ...(base ? { base } : {}) };
}

/**
 * A base that is not byte for byte the one the manifest names would give
 * every overlay over it a different system (an overlay is only valid over the
 * exact base it was made on). With a block list (and `how` = 'blocks') only
 * the list and the size are checked here and every block as it is read;
 * otherwise the whole base is hashed now.
 */
export async function verifyBase(dir: string, image: NonNullable<GuestManifest['image']>, how: 'full' | 'blocks' = 'full'): Promise<BaseImage> {
  const path = join(dir, image.file);
  let bytes: number;
  try {
    bytes = (await stat(path)).size;
  } catch {
    throw new SystemImageError(`the base image ${path} is missing`, {
      hint: 'copy the guest onto the stick again (`launcher init-stick DIR --guest NAME`)',
      details: { reason: 'missing', file: path },
    });
  }
  if (how === 'blocks' && image.blocks && bytes === image.bytes) {
    const blocks = await loadBlockHashes(dir, image.blocks, image.bytes);
    return { path, sha256: image.sha256, bytes, init: image.init, blocks };
  }
  const actual = bytes === image.bytes ? await sha256File(path) : undefined;
  if (actual !== image.sha256) {
    throw new SystemImageError(`the base image ${path} is corrupt: ${actual ? 'its sha256 is not the one its manifest names' : `${bytes} bytes, not ${image.bytes}`}`, {
      hint: 'copy the guest onto the stick again (`launcher init-stick DIR --guest NAME`); nothing was changed',
      details: { reason: 'corrupt', file: path, expected: image.sha256, ...(actual ? { actual } : { bytes }) },
    });
  }
  return { path, sha256: image.sha256, bytes, init: image.init };
}
