// Sizing a guest beside the guests already running from the stick
// (docs/guests.md, "Several at once" and "Per-user quotas"): read their
// recorded sizes, size this one (the host's share, src/session/sizing.ts;
// then the user's memory quota, src/session/user-quotas.ts), record its size in
// its own session lock. The three steps run under the stick's sizing lock
// (src/stick/sizing-lock.ts): two launches started at the same instant are
// sized one after the other, the second seeing the first.
import { fitMemoryQuota } from '../user-quotas.ts';
import type { HostProfile } from '../../hostprobe/host-profile.ts';
import type { GuestManifest } from '../../payload/guest-manifest.ts';
import type { StickLayout } from '../../stick/layout.ts';
import type { StickLock } from '../../stick/lock.ts';
import { liveSessions } from '../../stick/session-locks.ts';
import { withSizingLock } from '../../stick/sizing-lock.ts';
import { type MachineSizing, type RunningGuest, type SizingHost, type SizingOverrides, sizeMachine } from '../sizing.ts';
import { usersRunningGuests } from './user-quota.ts';

export async function sizeBesideOthers(args: {
  /** The launch's layout: its lock file is this session's. */
  layout: StickLayout;
  lock: Pick<StickLock, 'update'>;
  guest: string;
  manifest: GuestManifest;
  profile: SizingHost | HostProfile;
  overrides: SizingOverrides;
  user?: string;
  memoryQuotaMiB?: number | undefined;
}): Promise<MachineSizing> {
  const { layout, user } = args;
  return withSizingLock(layout, async () => {
    const sized = sizeMachine(args.manifest, args.profile, args.overrides, await runningGuests(layout));
    if (user !== undefined && args.memoryQuotaMiB !== undefined) {
      const fit = fitMemoryQuota({
        user,
        guest: args.guest,
        quotaMiB: args.memoryQuotaMiB,
        wantedMiB: sized.memoryMiB,
        minimumMiB: args.manifest.memory.minimumMiB,
        running: await usersRunningGuests(layout, user),
      });
      if (fit.reason) sized.reasons.push(fit.reason);
      sized.memoryMiB = fit.memoryMiB;
    }
    // Recorded before the sizing lock is let go: the next launch shares the host (and the quota) with this one.
    await args.lock.update({ machine: { memoryMiB: sized.memoryMiB, cpus: sized.cpus } });
    return sized;
  });
}

/** The other guests running from the stick and their sizes, as their session locks record them (this launch's own lock aside). */
async function runningGuests(layout: StickLayout): Promise<RunningGuest[]> {
  return (await liveSessions(layout))
    .filter((session) => session.layout.lockFile !== layout.lockFile && session.holder.machine)
    .map((session) => ({ guest: session.guest, memoryMiB: session.holder.machine!.memoryMiB, cpus: session.holder.machine!.cpus }));
}
