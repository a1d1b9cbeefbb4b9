// The stick owner's per-user quotas at launch (docs/guests.md, "Per-user
// quotas"; src/session/user-quotas.ts, src/session/disk-usage.ts). Disk: read
// before anything is made, so a refused launch (exit 36) creates nothing; what
// is left under the quota caps the guest's /host writes. Memory: checked
// while the stick's sizing lock is held (src/stick/sizing-lock.ts), so two of
// the user's guests starting at once each see the other.
import { existsSync } from 'node:fs';
import { checkDiskQuota, type DiskAddition, folderBytes, userDiskBytes } from '../disk-usage.ts';
import type { UsersGuest } from '../user-quotas.ts';
import { personalDiskPath } from '../../auth/users.ts';
import { dyntablePaths, type StickLayout } from '../../stick/layout.ts';
import { liveSessions } from '../../stick/session-locks.ts';
import { HOME_DISK_BYTES } from '../personal-disk.ts';
import type { OverlayBase } from '../system-disk.ts';

/**
 * Refuses the launch (exit 36) when what the user holds plus the disks this
 * launch would make passes the disk quota; else the bytes this guest's /host
 * files may hold (its files/ and upper/ count themselves as they open).
 */
export async function diskRoomAtLaunch(args: {
  layout: StickLayout;
  user: string;
  guest: string;
  quotaMiB: number;
  overlay?: Pick<OverlayBase, 'exists' | 'base'>;
}): Promise<number> {
  const { layout, user, guest } = args;
  const adding: DiskAddition[] = [];
  if (!existsSync(personalDiskPath(layout, user, guest))) adding.push({ what: `a personal disk for ${guest}`, bytes: HOME_DISK_BYTES });
  if (args.overlay && !args.overlay.exists) adding.push({ what: `a system overlay for ${guest}`, bytes: args.overlay.base.bytes });
  // One walk of the user's folder: this guest's /host files apart, as their store counts them itself.
  const { filesDir, upperDir } = dyntablePaths(layout, user, guest);
  const others = await userDiskBytes(layout, user, [filesDir, upperDir]);
  const files = (await folderBytes(filesDir)) + (await folderBytes(upperDir));
  await checkDiskQuota({ layout, user, quotaMiB: args.quotaMiB, adding, doing: `starting ${guest}`, usedBytes: others + files });
  const added = adding.reduce((sum, add) => sum + add.bytes, 0);
  return Math.max(0, args.quotaMiB * 1024 * 1024 - others - added);
}

/** The user's other guests running now, as their session locks record their memory (this launch's own lock aside). */
export async function usersRunningGuests(layout: StickLayout, user: string): Promise<UsersGuest[]> {
  return (await liveSessions(layout))
    .filter((session) => session.layout.lockFile !== layout.lockFile && session.holder.user === user && session.holder.machine)
    .map((session) => ({ guest: session.guest, memoryMiB: session.holder.machine!.memoryMiB }));
}
