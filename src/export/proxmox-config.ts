// A Proxmox VE guest (docs/export.md, "The targets"): the qm settings as one list,
// written both as the configuration Proxmox keeps (/etc/pve/qemu-server/
// VMID.conf, with the disk named once imported) and as the `qm` commands that
// make it on a node (import.sh: qm create, qm importdisk, qm set). A
// catalog image's guest boots from its disk by SeaBIOS or OVMF (`bios:`,
// with the EFI vars disk OVMF keeps its boot entries on), with no `args:`.
import type { DiskBus, NicModel } from '../images/hypervisor-targets.ts';
import type { GuestDescriptor } from './guest-descriptor.ts';
import { shellQuote } from './qemu-script.ts';
import { devicesOn } from './targets.ts';

/** qm's name for a disk on each bus (scsi0, virtio0 …) and for each card model. */
const DISK_KEY: Record<DiskBus, string> = { 'virtio-blk': 'virtio', 'virtio-scsi': 'scsi', lsilogic: 'scsi', sata: 'sata', ide: 'ide' };
const NIC_KEY: Record<NicModel, string> = { 'virtio-net': 'virtio', e1000: 'e1000', vmxnet3: 'vmxnet3' };
/** The disk key's prefix: Proxmox's own default bus (src/images/hypervisor-targets.ts), or the one a catalog image's initramfs drives. */
const diskKeyOf = (descriptor: GuestDescriptor) => DISK_KEY[devicesOn('proxmox', descriptor.facts.drives).diskBus];
/** OVMF's vars disk: 4 MiB vars, without Microsoft's keys enrolled (Secure Boot off, as the stick's images expect). */
const EFI_DISK = 'efitype=4m,pre-enrolled-keys=0';
/** UEFI is only ever a disk boot's firmware (a kernel given to the machine needs none). */
const bootsByUefi = (descriptor: GuestDescriptor) => descriptor.firmware === 'uefi';

/** Where import.sh puts the kernel and initramfs on the node (direct kernel boot through `args:`). */
const NODE_DIR = '/var/lib/vz/pocketvm';

export function proxmoxSettings(descriptor: GuestDescriptor): Array<[string, string]> {
  const dir = `${NODE_DIR}/${descriptor.name}`;
  const devices = devicesOn('proxmox', descriptor.facts.drives);
  const { boot } = descriptor;
  return [
    ['name', descriptor.name],
    ['ostype', 'l26'],
    ['machine', descriptor.machine],
    ['bios', bootsByUefi(descriptor) ? 'ovmf' : 'seabios'],
    ['sockets', '1'],
    ['cores', String(descriptor.cpus)],
    ['memory', String(descriptor.memoryMiB)],
    ['agent', '1'],
    ['serial0', 'socket'],
    // One VirtIO SCSI controller per disk: what Proxmox gives a new VM (and what iothread needs).
    ...(devices.diskBus === 'virtio-scsi' ? [['scsihw', 'virtio-scsi-single'] as [string, string]] : []),
    ['vga', descriptor.display === 'vga' ? 'std' : 'serial0'],
    ...descriptor.nics.map((nic, index): [string, string] => [`net${index}`, `${NIC_KEY[devices.nicModel]}=${nic.mac},bridge=vmbr0`]),
    ...(boot.from === 'kernel' ? [['args', `-kernel ${dir}/vmlinuz -initrd ${dir}/initrd.img -append '${boot.cmdline}'`] as [string, string]] : []),
  ];
}

/** The configuration file as Proxmox stores it, once import.sh ran with VMID and STORAGE. */
export function proxmoxConfig(descriptor: GuestDescriptor, vmid: number, storage: string): string {
  const diskKey = diskKeyOf(descriptor);
  const disks = descriptor.disks.map((disk, index) => `${diskKey}${index}: ${storage}:vm-${vmid}-disk-${index}${disk.serial ? `,serial=${disk.serial}` : ''}`);
  return [
    `# ${descriptor.name}, exported from a pocketvm stick`,
    ...proxmoxSettings(descriptor).map(([key, value]) => `${key}: ${value}`),
    ...disks,
    ...(bootsByUefi(descriptor) ? [`efidisk0: ${storage}:vm-${vmid}-disk-${descriptor.disks.length},${EFI_DISK}`] : []),
    `boot: order=${diskKey}0`,
    '',
  ].join('\n');
}

export function proxmoxImportScript(descriptor: GuestDescriptor, diskFiles: string[]): string {
  const dir = `${NODE_DIR}/${descriptor.name}`;
  const diskKey = diskKeyOf(descriptor);
  const kernel = descriptor.boot.from === 'kernel';
  const sets = proxmoxSettings(descriptor).map(([key, value]) => `--${key} ${shellQuote(value)}`);
  return [
    '#!/bin/sh',
    `# Makes ${descriptor.name} on this Proxmox VE node: ./import.sh VMID [STORAGE]`,
    `# (run as root on the node, from this folder${kernel ? '; `args:` needs root@pam' : ''}).`,
    'set -e',
    'vmid=${1:?usage: import.sh VMID [STORAGE]}',
    'storage=${2:-local-lvm}',
    'here=$(cd "$(dirname "$0")" && pwd)',
    ...(kernel ? [`install -D -m 0644 "$here/vmlinuz" ${dir}/vmlinuz`, `install -D -m 0644 "$here/initrd.img" ${dir}/initrd.img`] : []),
    `qm create "$vmid" ${sets.join(' ')}`,
    ...descriptor.disks.flatMap((disk, index) => [
      // import-from (Proxmox VE 7.2 and later) copies the qcow2 into the storage and attaches it in one step.
      `qm set "$vmid" --${diskKey}${index} "$storage:0,import-from=$here/${diskFiles[index]!}${disk.serial ? `,serial=${disk.serial}` : ''}"`,
    ]),
    ...(bootsByUefi(descriptor) ? [`qm set "$vmid" --efidisk0 "$storage:1,${EFI_DISK}"`] : []),
    ...(descriptor.disks.length > 0 ? [`qm set "$vmid" --boot order=${diskKey}0`] : []),
    '',
  ].join('\n');
}
