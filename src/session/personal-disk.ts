// The logged-in user's personal disk for one guest: users/<name>/disks/
// <guest>.qcow2, LUKS-encrypted with their disk key, attached while QEMU is
// paused. The guest learns the user's name (not a secret) from the kernel
// command line, formats the disk on first boot and mounts it as their home.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { personalDiskPath, type UnlockedUser } from '../auth/users.ts';
import type { StickLayout } from '../stick/layout.ts';
import { attachEncryptedDisk, type EncryptedDiskResult } from '../vmm/encrypted-disk.ts';
import { hotplugPort } from '../vmm/qemu-args.ts';
import type { QmpClient } from '../vmm/qmp-client.ts';

export const HOME_DISK_SERIAL = 'pocketvm-home';
export const HOME_DISK_BYTES = 1024 ** 3;

/** Words appended to the guest's kernel command line for this user. */
export function userCmdline(user: Pick<UnlockedUser, 'name'>): string {
  return `pocketvm.user=${user.name}`;
}

/** The attach hook for Machine.boot; `onAttached` hears whether the disk was created. */
export function attachPersonalDisk(
  layout: StickLayout,
  guest: string,
  user: UnlockedUser,
  onAttached?: (result: EncryptedDiskResult & { path: string }) => void,
): (qmp: QmpClient) => Promise<void> {
  const path = personalDiskPath(layout, user.name, guest);
  return async (qmp) => {
    await mkdir(dirname(path), { recursive: true });
    // keepSecret: a session can be suspended and resumed (src/session/suspend.ts, resume.ts).
    const result = await attachEncryptedDisk(
      qmp,
      { path, key: user.diskKey, id: 'pvm-home', serial: HOME_DISK_SERIAL, bus: hotplugPort(0), sizeBytes: HOME_DISK_BYTES, keepSecret: true },
      existsSync,
    );
    onAttached?.({ ...result, path });
  };
}

/** The guest user's uid and gid (the one user of a session; 30-home.sh creates them). */
export const GUEST_USER_ID = 1000;
