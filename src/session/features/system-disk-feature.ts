// An image guest's system as a launch feature: the user's encrypted overlay
// over the read-only base plugged in while QEMU is paused, and the words that
// make the payload's initramfs start the system from it (src/session/system-disk.ts).
import type { UnlockedUser } from '../../auth/users.ts';
import type { LaunchFeature } from '../launch/feature.ts';
import { attachSystemDisk, type OverlayBase, systemCmdline } from '../system-disk.ts';

export function systemDiskFeature(args: { chosen: OverlayBase; guest: string; user: UnlockedUser; onMessage: (message: string) => void }): LaunchFeature {
  const { chosen, user, guest } = args;
  const attach = attachSystemDisk(chosen, user, (disk) =>
    args.onMessage(
      disk.created
        ? `created ${user.name}'s encrypted system overlay over the ${guest} base (${(disk.createMs / 1000).toFixed(1)} s)`
        : `opened ${user.name}'s encrypted system overlay`,
    ),
  );
  // Port 0 is the personal disk's, port 1 this one's.
  return { name: 'system-disk', cmdline: systemCmdline(chosen.base), hotplugPorts: 1, attach: ({ qmp }) => attach(qmp) };
}
