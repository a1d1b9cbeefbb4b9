// A guest's payload on the stick: manifest + kernel + initrd, checked against
// the SHA256SUMS the payload build wrote, so a corrupt or half-copied file is
// reported by name before QEMU ever sees it.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PayloadError } from '../errors.ts';
import { type GuestManifest, loadManifest } from './guest-manifest.ts';

export interface GuestPayload {
  dir: string;
  manifest: GuestManifest;
  kernel: string;
  initrd: string;
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

export async function openGuestPayload(payloadRoot: string, guest: string): Promise<GuestPayload> {
  const dir = join(payloadRoot, guest);
  const manifest = await loadManifest(dir);
  if (manifest.name !== guest) {
    throw new PayloadError(`${join(dir, 'guest.json')} names the guest "${manifest.name}" but lives in the folder "${guest}"`, {
      hint: 'the folder name and the manifest name must be the same',
    });
  }
  const sums = await readChecksums(dir);
  const [kernel, initrd] = await Promise.all([verifyFile(dir, manifest.kernel, sums), verifyFile(dir, manifest.initrd, sums)]);
  return { dir, manifest, kernel, initrd };
}
