// Free space on the stick, checked before a launch: a guest started on a full
// stick would pause at its first write to the personal disk, its logs and the
// registry could not be written, and the person would not know why. (A suspend
// checks for its saved state's worst case in src/session/suspend.ts.)
import { statfs } from 'node:fs/promises';
import { StickError } from '../errors.ts';

/**
 * What a launch needs free at least: the session's logs (capped), the
 * registry's commits, the layer stores' first writes and the personal disk's
 * first clusters (created small, it grows as the guest writes).
 */
export const LAUNCH_MIN_FREE_BYTES = 32 * 1024 ** 2;

const mib = (bytes: number) => Math.floor(bytes / 1024 ** 2);

/** Bytes an unprivileged writer can still use on the stick; undefined where the host cannot tell. */
export async function freeBytes(stickRoot: string): Promise<number | undefined> {
  const fs = await statfs(stickRoot).catch(() => undefined);
  return fs ? fs.bavail * fs.bsize : undefined;
}

/** Refuses a launch on a stick with less than LAUNCH_MIN_FREE_BYTES free (exit 9). */
export async function requireRoomToLaunch(stickRoot: string, minimum = LAUNCH_MIN_FREE_BYTES): Promise<void> {
  const free = await freeBytes(stickRoot);
  if (free === undefined || free >= minimum) return;
  throw new StickError(
    `the stick is full: ${mib(free)} MiB free, and a launch needs at least ${mib(minimum)} MiB`,
    'free some space on the stick (nothing on it was changed), then launch again',
  );
}
