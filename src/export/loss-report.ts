// What a target cannot carry of a guest (docs/export.md, "The loss report"):
// one line per part of the guest that does not arrive, or arrives changed,
// from the descriptor and the target's capabilities (src/export/targets.ts).
// Printed by every export and given whole with --json. A catalog image's
// guest loses the stick's own boot (the default payload's kernel in the
// image's root): off the stick it boots the image's bootloader and kernel.
import type { GuestDescriptor } from './guest-descriptor.ts';
import { LINUX_DRIVERS } from '../images/hypervisor-targets.ts';
import { devicesOn, TARGETS, type ExportTarget } from './targets.ts';

export interface Loss {
  /** What of the guest: boot, disk-serial, agent, disk-bus, nic-model, devices-chosen, firmware, hardware, shares, devices, registry, home, user-changes, encryption. */
  part: string;
  says: string;
}

/** The lines of a guest that boots from its own disk: the stick's boot it leaves behind, and devices or firmware the target changes. */
function diskBootLosses(descriptor: GuestDescriptor, target: Exclude<ExportTarget, 'nocloud'>): Loss[] {
  const { devices } = TARGETS[target];
  const image = descriptor.facts.image?.name ?? 'its image';
  const losses: Loss[] = [
    {
      part: 'boot',
      says: `on the stick the guest ran on the ${descriptor.payload} payload's kernel and initramfs in the image's root; on ${target} it boots the image's own ${descriptor.boot.from === 'disk' ? descriptor.boot.bootloader : 'bootloader'} and kernel (${descriptor.firmware === 'uefi' ? 'UEFI' : 'BIOS'})`,
    },
  ];
  const given = devices.devices!;
  const chosen = devicesOn(target, descriptor.facts.drives);
  if (chosen.diskBus !== given.diskBus || chosen.nicModel !== given.nicModel)
    losses.push({
      part: 'devices-chosen',
      says: `disk on ${chosen.diskBus} and NIC ${chosen.nicModel}, not ${target}'s ${given.diskBus} and ${given.nicModel}: the image's initramfs is not known to have ${[...new Set([...LINUX_DRIVERS[given.diskBus], ...LINUX_DRIVERS[given.nicModel]])].join(', ')} (launcher image adapt ${image} --for ${devices.hypervisor} adds them; make the guest from the adapted image)`,
    });
  if (!TARGETS[target].can.agentChannel)
    losses.push({ part: 'agent', says: `the guest agent's port ${descriptor.agentChannel} is not kept: no clean shutdown from the host` });
  if (descriptor.firmware === 'uefi' && target === 'virtualbox-ova')
    losses.push({
      part: 'firmware',
      says: "the image boots by UEFI and VirtualBox's OVF has no word for it: turn on EFI in the machine's settings after import",
    });
  return losses;
}

export function lossReport(descriptor: GuestDescriptor, target: ExportTarget, user: string | undefined): Loss[] {
  const { can, devices } = TARGETS[target];
  const losses: Loss[] = [];
  const system = descriptor.disks.find((disk) => disk.role === 'system');
  const { boot } = descriptor;
  if (target === 'nocloud') {
    losses.push({
      part: 'hardware',
      says: `a NoCloud seed carries no machine: CPUs (${descriptor.cpus}), memory (${descriptor.memoryMiB} MiB), disks and the boot (${boot.from === 'kernel' ? boot.cmdline : `the image's own ${boot.bootloader}`}) are made on the target`,
    });
  } else if (boot.from === 'disk') {
    losses.push(...diskBootLosses(descriptor, target));
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
    losses.push({ part: 'registry', says: "the guest registry (each user's settings the guest reads with reg, docs/registry.md) stays on the stick" });
    const overlays = descriptor.kind === 'image' || descriptor.kind === 'catalog-image';
    if (overlays && user === undefined)
      losses.push({ part: 'user-changes', says: "no user's overlay: the system is the base as built, without anyone's changes (--user NAME adds theirs)" });
    if (overlays && user !== undefined)
      losses.push({ part: 'encryption', says: `${user}'s system is written decrypted: the export is not protected at rest as the stick is` });
  }
  return losses;
}
