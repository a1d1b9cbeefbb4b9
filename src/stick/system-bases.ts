// The base images of an image guest on a stick, and each user's system
// overlay over one of them (docs/images.md, "A newer base"). A qcow2 overlay
// is valid only over the exact base it was made on, so bases are named by
// their sha256 and an older one stays while some user's overlay was made over
// it; `launcher upgrade` moves a user's system onto the current base.
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { UsageError } from '../errors.ts';
import { loadManifest } from '../payload/guest-manifest.ts';
import { qcow2BackingFile } from '../primitives/qcow2-header.ts';
import { type StickLayout, systemOverlayPath } from './layout.ts';
import { acquireLock } from './lock.ts';
import { guestSessionLayout } from './session-locks.ts';

const BASE_FILE = /^base-[0-9a-f]{64}\.ext4$/;
const BLOCKS_FILE = /^base-([0-9a-f]{64})\.blocks$/;

/** Removes the guest's bases that are neither `current` nor under some user's overlay; their names. */
export async function removeUnusedBases(layout: StickLayout, guest: string, current: string): Promise<string[]> {
  const dir = join(layout.payloadRoot, guest);
  const inUse = new Set([current]);
  for (const user of existsSync(layout.usersRoot) ? await readdir(layout.usersRoot) : []) {
    const overlay = systemOverlayPath(layout, user, guest);
    if (!existsSync(overlay)) continue;
    // An overlay that cannot be read keeps every base: nothing it might need is removed.
    const backing = await qcow2BackingFile(overlay).catch(() => null);
    if (backing === null) return [];
    if (backing) inUse.add(basename(backing));
  }
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    if (BASE_FILE.test(name) && !inUse.has(name)) {
      await rm(join(dir, name), { force: true });
      removed.push(name);
    }
    // A base's block list goes with its base.
    const blocks = BLOCKS_FILE.exec(name);
    if (blocks && !inUse.has(`base-${blocks[1]}.ext4`)) await rm(join(dir, name), { force: true });
  }
  return removed;
}

export interface UpgradeResult {
  /** The base the user's system was on; undefined when they had no system overlay yet. */
  previous?: string;
  current: string;
  upgraded: boolean;
  removedBases: string[];
}

/**
 * Moves `user`'s system onto the guest's current base: their overlay (every
 * change they made to the system itself) is deleted, and their next launch
 * makes a fresh one over the current base. Their home (the personal disk),
 * registry and dynamic tables are other files and stay as they are. Holds the
 * stick lock, so no session has the overlay open.
 */
export async function upgradeSystem(layout: StickLayout, guest: string, user: string): Promise<UpgradeResult> {
  const manifest = await loadManifest(join(layout.payloadRoot, guest));
  if (!manifest.image)
    throw new UsageError(`the ${guest} guest does not boot from a disk image; there is nothing to upgrade`, 'upgrade is for image guests (docs/images.md)');
  const lock = await acquireLock(guestSessionLayout(layout, guest), 'upgrade', { guest, state: 'starting' });
  try {
    const overlay = systemOverlayPath(layout, user, guest);
    const previous = existsSync(overlay) ? await qcow2BackingFile(overlay).catch(() => undefined) : undefined;
    const previousName = previous === undefined ? undefined : basename(previous);
    const upgraded = existsSync(overlay) && previousName !== manifest.image.file;
    if (upgraded) await rm(overlay, { force: true });
    const removedBases = await removeUnusedBases(layout, guest, manifest.image.file);
    return { ...(previousName ? { previous: previousName } : {}), current: manifest.image.file, upgraded, removedBases };
  } finally {
    await lock.release();
  }
}
