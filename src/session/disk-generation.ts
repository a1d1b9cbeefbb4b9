// The personal disk's generation: which run of the guest last wrote it.
//
// A saved state holds the guest's memory as it was when the disk was in one
// particular state. Resumed over a disk that has been written since (a state
// set aside at a cold boot, or copied away and put back later), the guest's
// page cache and file system structures no longer match the disk: data is
// lost or the file system is corrupted. So every run that may write the disk
// (a boot, a resume) gets a new generation before the guest runs, recorded
// next to the disk:
//
//   users/<name>/disks/<guest>.generation
//     { "n": 7, "id": "<32 random hex>", "mac": "<HMAC-SHA256>" }
//
// and a state records the generation it was saved in. A state is resumed
// only over the generation it names (src/session/saved-state.ts); any other
// is "stale". `id` is random, so an old record cannot be made again, only
// copied back; `mac` is keyed from the user's state key (HKDF, own label)
// over user, guest, n and id, so a record made or edited without the
// passphrase does not verify. What this cannot stop: someone who copied the
// record together with the state (and not the disk) putting both back.
import { hkdfSync, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { userPaths } from '../auth/users.ts';
import { replaceFile } from '../primitives/atomic-replace.ts';
import type { StickLayout } from '../stick/layout.ts';

export interface DiskGeneration {
  /** Counts runs (for people reading it); `id` is what is compared. */
  n: number;
  id: string;
}

const GENERATION_KEY_INFO = 'pocketvm disk generation v1';

export interface GenerationScope {
  layout: StickLayout;
  user: { name: string; id: string };
  guest: string;
  /** The user's state key (src/auth/state-key.ts): the record's MAC key is derived from it. */
  stateKey: Buffer;
}

export function diskGenerationPath(layout: StickLayout, user: string, guest: string): string {
  return join(userPaths(layout, user).disksDir, `${guest}.generation`);
}

function mac(scope: GenerationScope, generation: DiskGeneration): Buffer {
  const key = Buffer.from(hkdfSync('sha256', scope.stateKey, Buffer.alloc(0), GENERATION_KEY_INFO, 32));
  try {
    return createHmac('sha256', key)
      .update(JSON.stringify([scope.user.name, scope.user.id, scope.guest, generation.n, generation.id]))
      .digest();
  } finally {
    key.fill(0);
  }
}

/**
 * The disk's current generation; undefined when there is no record (a disk
 * from before generations, or a new user); 'forged' when the record does
 * not verify under this user's key.
 */
export async function readDiskGeneration(scope: GenerationScope): Promise<DiskGeneration | undefined | 'forged'> {
  const path = diskGenerationPath(scope.layout, scope.user.name, scope.guest);
  if (!existsSync(path)) return undefined;
  let record: { n?: unknown; id?: unknown; mac?: unknown };
  try {
    record = JSON.parse(await readFile(path, 'utf8')) as typeof record;
  } catch {
    return 'forged';
  }
  if (!Number.isSafeInteger(record.n) || typeof record.id !== 'string' || !/^[0-9a-f]{32}$/.test(record.id) || typeof record.mac !== 'string') return 'forged';
  const generation = { n: record.n as number, id: record.id };
  const expected = mac(scope, generation);
  const given = Buffer.from(record.mac, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected) ? generation : 'forged';
}

/**
 * A new generation, durable on the stick before the guest runs: from here
 * on, every saved state of an earlier run is stale.
 */
export async function bumpDiskGeneration(scope: GenerationScope): Promise<DiskGeneration> {
  const current = await readDiskGeneration(scope);
  const generation: DiskGeneration = { n: (typeof current === 'object' ? current.n : 0) + 1, id: randomBytes(16).toString('hex') };
  const path = diskGenerationPath(scope.layout, scope.user.name, scope.guest);
  await mkdir(dirname(path), { recursive: true });
  await replaceFile(path, `${JSON.stringify({ ...generation, mac: mac(scope, generation).toString('hex') })}\n`);
  return generation;
}
