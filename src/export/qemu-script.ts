// A shell script that starts the exported guest with qemu-system-x86_64
// (docs/export.md, "The targets"): the same machine the stick runs, written as one
// command line a person can read and change. Paths are relative to the
// script's folder, so the folder can be moved; extra arguments pass through.
// A catalog image's guest boots its own bootloader: SeaBIOS, or OVMF for an
// image that boots by UEFI (the firmware file POCKETVM_OVMF names, else
// Debian's ovmf package's), on the devices its initramfs drives.
import type { DiskBus, NicModel } from '../images/hypervisor-targets.ts';
import { type GuestDescriptor, sourceOf } from './guest-descriptor.ts';
import { devicesOn } from './targets.ts';

/** QEMU's device for a disk on each bus a QEMU target offers (ide-hd lands on q35's own AHCI), and for each card. */
const DISK_DEVICE: Partial<Record<DiskBus, string>> = { 'virtio-blk': 'virtio-blk-pci', 'virtio-scsi': 'scsi-hd', sata: 'ide-hd', ide: 'ide-hd' };
const NIC_DEVICE: Record<NicModel, string> = { 'virtio-net': 'virtio-net-pci', e1000: 'e1000', vmxnet3: 'vmxnet3' };
/** Where Debian's ovmf package puts the firmware image QEMU's -bios takes. */
const OVMF = '/usr/share/ovmf/OVMF.fd';

/** Single-quoted for sh. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The kernel given to the machine, or the firmware that starts the disk's own bootloader. */
function bootLines(descriptor: GuestDescriptor, files: { kernel?: string; initrd?: string }): string[] {
  const { boot } = descriptor;
  if (boot.from === 'disk') return descriptor.firmware === 'uefi' ? [`-bios "\${POCKETVM_OVMF:-${OVMF}}"`] : [];
  if (!files.kernel || !files.initrd) throw new Error(`internal: ${descriptor.name} boots a kernel and none was written`);
  return [`-kernel "$here"/${shellQuote(files.kernel)} -initrd "$here"/${shellQuote(files.initrd)}`, `-append ${shellQuote(boot.cmdline)}`];
}

export function qemuScript(descriptor: GuestDescriptor, files: { kernel?: string; initrd?: string; disks: string[] }): string {
  const devices = devicesOn('qemu', descriptor.facts.drives);
  // UEFI is only ever a disk boot's firmware (a kernel given to the machine needs none).
  const uefi = descriptor.firmware === 'uefi';
  const lines = [
    `-name ${shellQuote(descriptor.name)}`,
    `-machine ${descriptor.machine},accel="\${POCKETVM_ACCEL:-kvm:tcg}"`,
    `-m ${descriptor.memoryMiB} -smp ${descriptor.cpus}`,
    `-nodefaults -no-user-config`,
    ...bootLines(descriptor, files),
    ...(devices.diskBus === 'virtio-scsi' && descriptor.disks.length > 0 ? ['-device virtio-scsi-pci,id=scsi0'] : []),
    ...descriptor.disks.flatMap((disk, index) => [
      `-blockdev driver=qcow2,node-name=disk${index},file.driver=file,file.filename="$here"/${shellQuote(files.disks[index]!)}`,
      `-device ${DISK_DEVICE[devices.diskBus]!},drive=disk${index}${disk.serial ? `,serial=${disk.serial}` : ''}`,
    ]),
    ...descriptor.nics.map((nic, index) => `-nic user,id=net${index},model=${NIC_DEVICE[devices.nicModel]},mac=${nic.mac}`),
    `-device virtio-serial-pci,id=vser0`,
    `-chardev socket,id=agent,path="\${POCKETVM_AGENT_SOCKET:-$here/agent.sock}",server=on,wait=off`,
    `-device virtserialport,bus=vser0.0,chardev=agent,name=${descriptor.agentChannel}`,
    `-serial "\${POCKETVM_SERIAL:-mon:stdio}"`,
    descriptor.display === 'vga' ? `-vga virtio` : `-display none`,
  ];
  return [
    '#!/bin/sh',
    `# ${descriptor.name}, exported from a pocketvm stick (${sourceOf(descriptor)}).`,
    `# POCKETVM_ACCEL (kvm:tcg), POCKETVM_SERIAL (mon:stdio)${uefi ? ', POCKETVM_OVMF' : ''} and POCKETVM_AGENT_SOCKET`,
    `# change the accelerator, where the console goes${uefi ? ', the UEFI firmware' : ''} and the guest agent socket;`,
    '# further arguments are passed to QEMU.',
    'set -e',
    'here=$(cd "$(dirname "$0")" && pwd)',
    `exec "\${QEMU:-qemu-system-x86_64}" \\`,
    ...lines.map((line) => `  ${line} \\`),
    '  "$@"',
    '',
  ].join('\n');
}
