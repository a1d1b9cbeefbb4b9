// An image guest's system as a launch feature: the user's encrypted overlay
// over the read-only base plugged in while QEMU is paused, and the words that
// make the payload's initramfs start the system from it (src/session/system-disk.ts).
// A base with a block list is served by the launcher, each block checked as
// QEMU reads it (src/session/verified-base.ts): a bad block quits QEMU before
// the guest gets it, and the launch (or the session) ends with exit 18.
import type { UnlockedUser } from '../../auth/users.ts';
import type { SystemImageError } from '../../errors.ts';
import type { LaunchFeature } from '../launch/feature.ts';
import type { Teardown } from '../launch/teardown.ts';
import { attachSystemDisk, type OverlayBase, systemCmdline } from '../system-disk.ts';
import { serveVerifiedBase } from '../verified-base.ts';

export function systemDiskFeature(args: {
  chosen: OverlayBase;
  guest: string;
  user: UnlockedUser;
  onMessage: (message: string) => void;
  teardown: Teardown;
  /** The session's private host folder, where the checked base's socket goes. */
  hostDir: () => Promise<string>;
  /** A bad block of the base: the one line for the person (QEMU is being quit). */
  onCorrupt: (error: SystemImageError) => void;
}): LaunchFeature {
  const { chosen, user, guest } = args;
  let corrupt: SystemImageError | undefined;
  let quit: (() => void) | undefined;
  const blocks = chosen.base.blocks;
  const baseSocket = blocks
    ? async () => {
        const served = await serveVerifiedBase(
          chosen.base.path,
          blocks,
          (error) => {
            corrupt = error;
            args.onCorrupt(error);
            quit?.();
          },
          await args.hostDir(),
        );
        args.teardown.add(() => served.close());
        return served.socket;
      }
    : undefined;
  const attach = attachSystemDisk(
    chosen,
    user,
    (disk) =>
      args.onMessage(
        disk.created
          ? `created ${user.name}'s encrypted system overlay over the ${guest} base (${(disk.createMs / 1000).toFixed(1)} s)`
          : `opened ${user.name}'s encrypted system overlay`,
      ),
    baseSocket,
  );
  // Port 0 is the personal disk's, port 1 this one's.
  return {
    name: 'system-disk',
    cmdline: systemCmdline(chosen.base),
    hotplugPorts: 1,
    attach: ({ qmp }) => {
      quit = () => void qmp.execute('quit').catch(() => {});
      return attach(qmp);
    },
    failure: () => corrupt,
  };
}
