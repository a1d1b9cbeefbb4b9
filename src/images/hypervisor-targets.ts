// The hypervisors a guest is made ready for (`launcher image adapt --for`,
// docs/adapt.md "Targets") and moved to (`launcher export`, docs/export.md
// "The targets"): ONE table of the devices each gives a guest in its usual
// configuration, and the Linux drivers those need in the guest's initramfs.
// Adapt reads it to choose what the initramfs gets; the exporter
// (src/export/targets.ts) reads the same record to write the target's files,
// so an image adapted for a target and a guest exported to it meet the same
// disk bus and NIC (test/images/hypervisor-targets.test.ts). It lives in
// images/ because images sits below export (test/architecture/layers.ts).

export const HYPERVISORS = ['pocketvm', 'libvirt', 'proxmox', 'vmware', 'virtualbox'] as const;
export type Hypervisor = (typeof HYPERVISORS)[number];

/** virtio-blk; virtio-scsi; lsilogic: LSI Logic parallel SCSI (VMware); sata: AHCI; ide: PIIX. */
export type DiskBus = 'virtio-blk' | 'virtio-scsi' | 'lsilogic' | 'sata' | 'ide';
export type NicModel = 'virtio-net' | 'e1000' | 'vmxnet3';
export type Firmware = 'bios' | 'uefi';

export interface TargetDevices {
  /** The system disk's bus in the target's usual configuration for a new Linux VM. */
  diskBus: DiskBus;
  /** Disk buses the target offers at all. */
  diskBuses: readonly DiskBus[];
  nicModel: NicModel;
  nicModels: readonly NicModel[];
  /** The machine type (QEMU) or virtual hardware family (OVF). */
  machine: string;
  firmware: readonly Firmware[];
  /** The target talks to qemu-guest-agent over a virtio-serial port. */
  guestAgent: boolean;
  /** Devices every Linux image drives, chosen when its initramfs cannot be made again: the target must offer them. */
  fallback: { diskBus: 'sata'; nicModel: 'e1000' };
}

/** Linux modules a device needs (built in or in the initramfs) for the guest to find its disk and network. */
export const LINUX_DRIVERS: Record<DiskBus | NicModel, readonly string[]> = {
  'virtio-blk': ['virtio_pci', 'virtio_blk'],
  'virtio-scsi': ['virtio_pci', 'virtio_scsi', 'sd_mod'],
  // mptspi is LSI Logic parallel SCSI (OVF ResourceSubType lsilogic); mptsas would be LSI Logic SAS.
  lsilogic: ['mptspi', 'mptscsih', 'mptbase', 'sd_mod'],
  sata: ['ahci', 'libahci', 'sd_mod'],
  ide: ['ata_piix', 'pata_acpi', 'sd_mod'],
  'virtio-net': ['virtio_pci', 'virtio_net'],
  e1000: ['e1000'],
  vmxnet3: ['vmxnet3'],
};

/** What pocketvm-customize's probe always reports (ahci, e1000): the fallback is judged by these. */
export const FALLBACK_DRIVERS: readonly string[] = ['ahci', 'e1000'];

/** The QEMU/KVM engines: q35, BIOS or UEFI, every bus QEMU emulates. */
const KVM = {
  diskBuses: ['virtio-blk', 'virtio-scsi', 'sata', 'ide'],
  nicModel: 'virtio-net',
  nicModels: ['virtio-net', 'e1000', 'vmxnet3'],
  machine: 'q35',
  firmware: ['bios', 'uefi'],
  guestAgent: true,
  fallback: { diskBus: 'sata', nicModel: 'e1000' },
} as const;

export const TARGET_DEVICES: Record<Hypervisor, TargetDevices> = {
  // The stick's own QEMU (src/vmm): the system on virtio-blk, found by its serial
  // (payload/rootfs/lib/pocketvm/switch-root.sh), the agent channel for suspend's fsfreeze.
  pocketvm: { ...KVM, diskBus: 'virtio-blk' },
  // virt-install's and virt-manager's default for a Linux guest: <target bus='virtio'/>, i.e. virtio-blk.
  libvirt: { ...KVM, diskBus: 'virtio-blk' },
  // Proxmox VE gives a new VM the controller "VirtIO SCSI single" (scsihw:
  // virtio-scsi-single, the disk on scsi0) since 7.3, not virtio-blk: a guest
  // moved there needs virtio_scsi and sd_mod in its initramfs.
  proxmox: { ...KVM, diskBus: 'virtio-scsi' },
  // What VMware's OVF import builds from our vmx-14 descriptor ("Other Linux
  // 64-bit"): an LSI Logic parallel SCSI controller, so a Linux initramfs needs
  // mptspi (LSI Logic SAS, the other default, would be mptsas); VMXNET3 as the
  // card. VMware Tools, not qemu-guest-agent. SATA and e1000 it offers too.
  vmware: {
    diskBus: 'lsilogic',
    diskBuses: ['lsilogic', 'sata', 'ide'],
    nicModel: 'vmxnet3',
    nicModels: ['vmxnet3', 'e1000'],
    machine: 'vmx-14',
    firmware: ['bios', 'uefi'],
    guestAgent: false,
    fallback: { diskBus: 'sata', nicModel: 'e1000' },
  },
  // VirtualBox's "Linux 64-bit" defaults: an AHCI (SATA) controller and an
  // Intel PRO/1000 (e1000); Guest Additions, not qemu-guest-agent.
  virtualbox: {
    diskBus: 'sata',
    diskBuses: ['sata', 'ide'],
    nicModel: 'e1000',
    nicModels: ['e1000', 'virtio-net'],
    machine: 'virtualbox-2.2',
    firmware: ['bios', 'uefi'],
    guestAgent: false,
    fallback: { diskBus: 'sata', nicModel: 'e1000' },
  },
};

/** The modules a guest needs to find its system disk and its network card on TARGET (and the agent's port where it has one). */
export function driversFor(target: Hypervisor): string[] {
  const { diskBus, nicModel, guestAgent } = TARGET_DEVICES[target];
  return [...new Set([...LINUX_DRIVERS[diskBus], ...LINUX_DRIVERS[nicModel], ...(guestAgent ? ['virtio_console'] : [])])];
}
