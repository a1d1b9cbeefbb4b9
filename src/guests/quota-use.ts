// What a user uses against their quotas (docs/guests.md, "Per-user quotas"),
// for `guest quota`: the memory of their running guests as the session locks
// record it, and what their guests hold on the stick as the disk quota counts it.
import type { StickLayout } from '../stick/layout.ts';
import { liveSessions } from '../stick/session-locks.ts';
import { userDiskBytes } from '../session/disk-usage.ts';

export interface QuotaUse {
  memoryMiB: number;
  diskMiB: number;
  running: string[];
}

export async function quotaUse(layout: StickLayout, user: string): Promise<QuotaUse> {
  const mine = (await liveSessions(layout)).filter((session) => session.holder.user === user);
  return {
    memoryMiB: mine.reduce((sum, session) => sum + (session.holder.machine?.memoryMiB ?? 0), 0),
    diskMiB: Math.ceil((await userDiskBytes(layout, user)) / (1024 * 1024)),
    running: mine.map((session) => session.guest),
  };
}
