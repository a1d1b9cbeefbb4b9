// What each hypervisor `launcher image adapt --for` knows gives a guest
// (docs/adapt.md, "Targets"): the devices its usual configuration attaches,
// the Linux drivers those need in the initramfs (the disk's, so the root is
// found; the NIC's, so the network comes up the same way), the emulated
// devices to fall back on when the image's initramfs cannot be made again,
// and whether it talks to qemu-guest-agent. One small table: the export
// helper's full capability table (issue 22) is the place it folds into.

export const ADAPT_TARGETS = ['pocketvm', 'libvirt', 'proxmox', 'vmware', 'virtualbox'] as const;
export type AdaptTarget = (typeof ADAPT_TARGETS)[number];

export interface TargetDevices {
  /** The disk's bus and the NIC's model in the target's usual configuration. */
  disk: 'virtio-blk' | 'virtio-scsi' | 'sata' | 'lsilogic';
  nic: 'virtio-net' | 'e1000' | 'vmxnet3';
  /** Linux modules the initramfs needs for them (virtio_pci: the virtio devices' PCI transport). */
  drivers: string[];
  /** Devices every image's Linux drives (ahci, e1000), chosen when the initramfs cannot be made again. */
  fallback: { disk: 'sata'; nic: 'e1000'; drivers: string[] };
  /** The target runs a qemu-guest-agent channel (virtio-serial). */
  guestAgent: boolean;
}

const VIRTIO = ['virtio_pci', 'virtio_blk', 'virtio_scsi', 'virtio_net', 'virtio_console'];
const FALLBACK = { disk: 'sata', nic: 'e1000', drivers: ['ahci', 'e1000'] } as const;

export const TARGET_DEVICES: Record<AdaptTarget, TargetDevices> = {
  // The stick's own QEMU (src/vmm): a virtio disk and NIC, the agent channel for suspend's fsfreeze.
  pocketvm: { disk: 'virtio-blk', nic: 'virtio-net', drivers: VIRTIO, fallback: { ...FALLBACK, drivers: [...FALLBACK.drivers] }, guestAgent: true },
  // virt-install's and virt-manager's defaults for a Linux guest.
  libvirt: { disk: 'virtio-blk', nic: 'virtio-net', drivers: VIRTIO, fallback: { ...FALLBACK, drivers: [...FALLBACK.drivers] }, guestAgent: true },
  // Proxmox VE's defaults: VirtIO SCSI single, VirtIO net, the agent option.
  proxmox: { disk: 'virtio-scsi', nic: 'virtio-net', drivers: VIRTIO, fallback: { ...FALLBACK, drivers: [...FALLBACK.drivers] }, guestAgent: true },
  // A VMware "other Linux 64-bit" VM: SATA or LSI Logic parallel SCSI, e1000 or VMXNET3; VMware Tools, not qemu-ga.
  vmware: {
    disk: 'sata',
    nic: 'vmxnet3',
    drivers: ['ahci', 'e1000', 'vmxnet3', 'mptspi'],
    fallback: { ...FALLBACK, drivers: [...FALLBACK.drivers] },
    guestAgent: false,
  },
  // VirtualBox's Linux 64-bit defaults: AHCI SATA and an Intel PRO/1000; Guest Additions, not qemu-ga.
  virtualbox: { disk: 'sata', nic: 'e1000', drivers: ['ahci', 'e1000'], fallback: { ...FALLBACK, drivers: [...FALLBACK.drivers] }, guestAgent: false },
};
