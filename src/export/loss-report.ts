// What a target cannot carry of a guest (docs/export.md, "The loss report"):
// one line per part of the guest that does not arrive, or arrives changed,
// from the descriptor and the target's capabilities (src/export/targets.ts).
// Printed by every export and given whole with --json.
import type { GuestDescriptor } from './guest-descriptor.ts';
import { LINUX_DRIVERS } from '../images/hypervisor-targets.ts';
import { TARGETS, type ExportTarget } from './targets.ts';

export interface Loss {
  /** What of the guest: boot, disk-serial, agent, disk-bus, nic-model, hardware, shares, devices, home, user-changes, encryption. */
  part: string;
  says: string;
}

export function lossReport(descriptor: GuestDescriptor, target: ExportTarget, user: string | undefined): Loss[] {
  const { can, devices } = TARGETS[target];
  const losses: Loss[] = [];
  const system = descriptor.disks.find((disk) => disk.role === 'system');
  if (!can.hardware) {
    losses.push({
      part: 'hardware',
      says: `a NoCloud seed carries no machine: CPUs (${descriptor.cpus}), memory (${descriptor.memoryMiB} MiB), disks and the boot (${descriptor.boot.cmdline}) are made on the target`,
    });
  } else {
    if (!can.directKernelBoot)
      losses.push({
        part: 'boot',
        says: `the guest boots the payload's kernel and initramfs given beside its disk; ${target} boots only from a disk, and ${system ? 'the system disk has no bootloader' : 'this guest has no disk'}: it will not start there until \`launcher image adapt --for ${devices.hypervisor}\` gives it one`,
      });
    if (system?.serial && !can.diskSerial)
      losses.push({ part: 'disk-serial', says: `the system disk's serial ${system.serial} (the initramfs finds the system by it) is not kept on ${target}` });
    if (!can.agentChannel)
      losses.push({ part: 'agent', says: `the guest agent's port ${descriptor.agentChannel} is not kept: no ready line, no clean shutdown from the host` });
    const given = devices.devices!;
    const moved = descriptor.disks.find((disk) => disk.bus !== given.diskBus);
    if (moved)
      losses.push({
        part: 'disk-bus',
        says: `disks move from ${moved.bus} to ${given.diskBus}: the guest needs ${LINUX_DRIVERS[given.diskBus].join(', ')} in its initramfs (launcher image adapt --for ${devices.hypervisor} adds them to an image)`,
      });
    const card = descriptor.nics.find((nic) => nic.model !== given.nicModel);
    if (card) losses.push({ part: 'nic-model', says: `network cards move from ${card.model} to ${given.nicModel} (MACs kept)` });
  }
  if (descriptor.stickOnly.shares.length > 0)
    losses.push({ part: 'shares', says: `shared folders served by the launcher (${descriptor.stickOnly.shares.join(', ')}) do not exist off the stick` });
  if (descriptor.stickOnly.devices.length > 0 && can.hardware)
    losses.push({ part: 'devices', says: `devices not written: ${descriptor.stickOnly.devices.join(', ')}` });
  if (can.hardware) {
    losses.push({ part: 'home', says: "users' personal disks (pocketvm-home, each user's encrypted home) are not exported" });
    if (descriptor.kind === 'image' && user === undefined)
      losses.push({ part: 'user-changes', says: "no user's overlay: the system is the base as built, without anyone's changes (--user NAME adds theirs)" });
    if (descriptor.kind === 'image' && user !== undefined)
      losses.push({ part: 'encryption', says: `${user}'s system is written decrypted: the export is not protected at rest as the stick is` });
  }
  return losses;
}
