// What each engine a guest can move to (docs/export.md) can and cannot
// represent, and which hypervisor's devices `launcher export` gives the guest
// there. The devices themselves are NOT here: they are the one table
// src/images/hypervisor-targets.ts that `image adapt` reads too, so a guest
// exported to a target and an image adapted for it meet the same disk bus and
// NIC; this file adds only what is the exporter's (capabilities, file format).
import { TARGET_DEVICES, type DiskBus, type Hypervisor, type NicModel, type TargetDevices } from '../images/hypervisor-targets.ts';
import type { GuestDrives } from './catalog-image-guest.ts';

export const EXPORT_TARGETS = ['libvirt', 'qemu', 'proxmox', 'vmware-ova', 'virtualbox-ova', 'nocloud'] as const;
export type ExportTarget = (typeof EXPORT_TARGETS)[number];

export type DiskFileFormat = 'qcow2' | 'vmdk-stream' | 'none';

/** The devices the exporter gives the guest on a target: the hypervisor's record of the one table, and the disk's file format. */
export interface ExportDevices {
  /** The hypervisor whose devices these are (src/images/hypervisor-targets.ts); none for a NoCloud seed. */
  hypervisor: Hypervisor | 'none';
  devices?: TargetDevices;
  /** The exported disk's file format. */
  diskFormat: DiskFileFormat;
}

/** What the target can carry of a guest; each false is a line of the loss report when the guest uses it. */
export interface TargetCapabilities {
  /** Boots a kernel and initramfs given beside the disk (the stick's image guests have no bootloader on their disk). */
  directKernelBoot: boolean;
  /** Gives a disk the serial the guest's initramfs finds its system by (pocketvm.root). */
  diskSerial: boolean;
  /** The qemu-guest-agent's virtio-serial port (org.qemu.guest_agent.0): the guest says it is ready there. */
  agentChannel: boolean;
  /** A serial console on ttyS0. */
  serialConsole: boolean;
  /** The NIC keeps the MAC the guest knows. */
  macAddress: boolean;
  /** CPUs, memory, disks and NICs at all (nocloud carries none: it is a seed for a machine made elsewhere). */
  hardware: boolean;
  /** Host name, user, SSH keys and network matched by MAC given to the guest at first boot. */
  firstBootSettings: boolean;
}

export interface TargetProfile {
  target: ExportTarget;
  describe: string;
  devices: ExportDevices;
  can: TargetCapabilities;
}

const FULL: TargetCapabilities = {
  directKernelBoot: true,
  diskSerial: true,
  agentChannel: true,
  serialConsole: true,
  macAddress: true,
  hardware: true,
  firstBootSettings: false,
};

const on = (hypervisor: Hypervisor, diskFormat: DiskFileFormat): ExportDevices => ({ hypervisor, devices: TARGET_DEVICES[hypervisor], diskFormat });

export const TARGETS: Record<ExportTarget, TargetProfile> = {
  libvirt: {
    target: 'libvirt',
    describe: 'a libvirt domain (virsh define) with its qcow2',
    devices: on('libvirt', 'qcow2'),
    can: FULL,
  },
  qemu: {
    target: 'qemu',
    describe: 'a shell script that runs qemu-system-x86_64 on the qcow2',
    // The same machine the stick runs.
    devices: on('pocketvm', 'qcow2'),
    can: FULL,
  },
  proxmox: {
    target: 'proxmox',
    describe: 'a Proxmox VE qm configuration, the qcow2 and the qm commands that import it',
    devices: on('proxmox', 'qcow2'),
    // Direct kernel boot only through `args:` (root@pam may set it; the exporter writes it).
    can: FULL,
  },
  'vmware-ova': {
    target: 'vmware-ova',
    describe: 'an OVF 1.0 package (OVA) for VMware (hardware family vmx-14, streamOptimized vmdk)',
    devices: on('vmware', 'vmdk-stream'),
    can: { ...FULL, directKernelBoot: false, diskSerial: false, agentChannel: false },
  },
  'virtualbox-ova': {
    target: 'virtualbox-ova',
    describe: 'an OVF 1.0 package (OVA) for VirtualBox (virtualbox-2.2, SATA, e1000, streamOptimized vmdk)',
    devices: on('virtualbox', 'vmdk-stream'),
    can: { ...FULL, directKernelBoot: false, diskSerial: false, agentChannel: false },
  },
  nocloud: {
    target: 'nocloud',
    describe: 'a cloud-init NoCloud seed: user-data, meta-data, network-config',
    devices: { hypervisor: 'none', diskFormat: 'none' },
    can: {
      directKernelBoot: false,
      diskSerial: false,
      agentChannel: false,
      serialConsole: false,
      macAddress: true,
      hardware: false,
      firstBootSettings: true,
    },
  },
};

/** The hypervisor `image adapt --for` prepares an image for, to run where TARGET's files take it (none for nocloud). */
export function hypervisorOf(target: ExportTarget): Hypervisor | undefined {
  const { hypervisor } = TARGETS[target].devices;
  return hypervisor === 'none' ? undefined : hypervisor;
}

/**
 * The disk bus and NIC model the guest gets on TARGET. A payload's guest
 * (`drives` absent) gets the target's own, as the payload's initramfs is
 * readied for them; a catalog image's guest gets what its initramfs drives:
 * the bus and model an `image adapt` readied it for when the target offers
 * them, else the emulated fallback (SATA, e1000) every Linux drives.
 */
export function devicesOn(target: Exclude<ExportTarget, 'nocloud'>, drives: GuestDrives | undefined): { diskBus: DiskBus; nicModel: NicModel } {
  const devices = TARGETS[target].devices.devices!;
  if (!drives) return { diskBus: devices.diskBus, nicModel: devices.nicModel };
  const offered = <T>(wanted: T | null, all: readonly T[]) => (wanted !== null && all.includes(wanted) ? wanted : undefined);
  return {
    diskBus: offered(drives.diskBus, devices.diskBuses) ?? devices.fallback.diskBus,
    nicModel: offered(drives.nicModel, devices.nicModels) ?? devices.fallback.nicModel,
  };
}
