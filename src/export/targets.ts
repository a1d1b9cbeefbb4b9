// What each engine a guest can move to (docs/export.md) can and cannot
// represent, and the devices `launcher export` gives the guest there. One
// table, read by the exporter (what to write, what the loss report says) and
// by `image adapt` (which drivers a guest needs to boot on that target, or
// which emulated devices to choose when it lacks virtio): the per-target
// device facts live here once, not in each consumer.

export const EXPORT_TARGETS = ['libvirt', 'qemu', 'proxmox', 'vmware-ova', 'virtualbox-ova', 'nocloud'] as const;
export type ExportTarget = (typeof EXPORT_TARGETS)[number];

/** virtio: virtio-blk; virtio-scsi; lsilogic: VMware's LSI Logic parallel SCSI; sata: AHCI; ide: PIIX. */
export type DiskBus = 'virtio' | 'virtio-scsi' | 'lsilogic' | 'sata' | 'ide';
export type NicModel = 'virtio' | 'e1000' | 'vmxnet3';
export type Firmware = 'bios' | 'uefi';
export type DiskFileFormat = 'qcow2' | 'vmdk-stream' | 'none';

/** The devices the exporter gives the guest on a target, and the Linux drivers they need in its initramfs. */
export interface TargetDevices {
  /** The system disk's bus on this target. */
  diskBus: DiskBus | 'none';
  /** Disk buses the target offers at all (adapt may choose one the guest already has a driver for). */
  diskBuses: readonly DiskBus[];
  nicModel: NicModel | 'none';
  nicModels: readonly NicModel[];
  machine: string;
  firmware: readonly Firmware[];
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
  devices: TargetDevices;
  can: TargetCapabilities;
}

/** Linux modules a device needs (built in or in the initramfs) for the guest to find its disk and network. */
export const LINUX_DRIVERS: Record<DiskBus | NicModel, readonly string[]> = {
  virtio: ['virtio_pci', 'virtio_blk', 'virtio_net'],
  'virtio-scsi': ['virtio_pci', 'virtio_scsi', 'sd_mod'],
  lsilogic: ['mptspi', 'mptscsih', 'mptbase', 'sd_mod'],
  sata: ['ahci', 'libahci', 'sd_mod'],
  ide: ['ata_piix', 'pata_acpi', 'sd_mod'],
  e1000: ['e1000'],
  vmxnet3: ['vmxnet3'],
};

const FULL: TargetCapabilities = {
  directKernelBoot: true,
  diskSerial: true,
  agentChannel: true,
  serialConsole: true,
  macAddress: true,
  hardware: true,
  firstBootSettings: false,
};

/** The QEMU/KVM engines (libvirt, plain QEMU, Proxmox VE) take the same devices: the stick's own. */
const KVM_DEVICES: TargetDevices = {
  diskBus: 'virtio',
  diskBuses: ['virtio', 'virtio-scsi', 'sata', 'ide'],
  nicModel: 'virtio',
  nicModels: ['virtio', 'e1000', 'vmxnet3'],
  machine: 'q35',
  firmware: ['bios', 'uefi'],
  diskFormat: 'qcow2',
};

export const TARGETS: Record<ExportTarget, TargetProfile> = {
  libvirt: {
    target: 'libvirt',
    describe: 'a libvirt domain (virsh define) with its qcow2',
    devices: KVM_DEVICES,
    can: FULL,
  },
  qemu: {
    target: 'qemu',
    describe: 'a shell script that runs qemu-system-x86_64 on the qcow2',
    devices: KVM_DEVICES,
    can: FULL,
  },
  proxmox: {
    target: 'proxmox',
    describe: 'a Proxmox VE qm configuration, the qcow2 and the qm commands that import it',
    devices: KVM_DEVICES,
    // Direct kernel boot only through `args:` (root@pam may set it; the exporter writes it).
    can: FULL,
  },
  'vmware-ova': {
    target: 'vmware-ova',
    describe: 'an OVF 1.0 package (OVA) for VMware (hardware family vmx-14, streamOptimized vmdk)',
    devices: {
      diskBus: 'lsilogic',
      diskBuses: ['lsilogic', 'sata', 'ide'],
      nicModel: 'vmxnet3',
      nicModels: ['vmxnet3', 'e1000'],
      machine: 'vmx-14',
      firmware: ['bios', 'uefi'],
      diskFormat: 'vmdk-stream',
    },
    can: { ...FULL, directKernelBoot: false, diskSerial: false, agentChannel: false },
  },
  'virtualbox-ova': {
    target: 'virtualbox-ova',
    describe: 'an OVF 1.0 package (OVA) for VirtualBox (virtualbox-2.2, SATA, e1000, streamOptimized vmdk)',
    devices: {
      diskBus: 'sata',
      diskBuses: ['sata', 'ide'],
      nicModel: 'e1000',
      nicModels: ['e1000', 'virtio'],
      machine: 'virtualbox-2.2',
      firmware: ['bios', 'uefi'],
      diskFormat: 'vmdk-stream',
    },
    can: { ...FULL, directKernelBoot: false, diskSerial: false, agentChannel: false },
  },
  nocloud: {
    target: 'nocloud',
    describe: 'a cloud-init NoCloud seed: user-data, meta-data, network-config',
    devices: { diskBus: 'none', diskBuses: [], nicModel: 'none', nicModels: [], machine: 'none', firmware: [], diskFormat: 'none' },
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

/** The modules a guest needs to find its system disk and its network card on `target`. */
export function driversFor(target: ExportTarget): string[] {
  const { diskBus, nicModel } = TARGETS[target].devices;
  const needs = [...(diskBus === 'none' ? [] : LINUX_DRIVERS[diskBus]), ...(nicModel === 'none' ? [] : LINUX_DRIVERS[nicModel])];
  return [...new Set(needs)];
}
