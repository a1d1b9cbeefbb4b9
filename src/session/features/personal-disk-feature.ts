// The logged-in user's encrypted personal disk as a launch feature: their
// name on the kernel command line, a free PCIe port, and the disk plugged in
// while QEMU is paused (src/session/personal-disk.ts).
import type { UnlockedUser } from '../../auth/users.ts';
import type { StickLayout } from '../../stick/layout.ts';
import type { LaunchFeature } from '../launch/feature.ts';
import { attachPersonalDisk, userCmdline } from '../personal-disk.ts';

export function personalDiskFeature(args: { layout: StickLayout; guest: string; user: UnlockedUser; onMessage: (message: string) => void }): LaunchFeature {
  const { user } = args;
  const attachDisk = attachPersonalDisk(args.layout, args.guest, user, (disk) =>
    args.onMessage(
      disk.created ? `created ${user.name}'s encrypted disk ${disk.path} (${(disk.createMs / 1000).toFixed(1)} s)` : `opened ${user.name}'s encrypted disk`,
    ),
  );
  return { name: 'personal-disk', cmdline: [userCmdline(user)], hotplugPorts: 1, attach: ({ qmp }) => attachDisk(qmp) };
}
