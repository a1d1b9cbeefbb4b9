// A shell script that starts the exported guest with qemu-system-x86_64
// (docs/export.md, "The targets"): the same machine the stick runs, written as one
// command line a person can read and change. Paths are relative to the
// script's folder, so the folder can be moved; extra arguments pass through.
import type { DiskBus, NicModel } from '../images/hypervisor-targets.ts';
import type { GuestDescriptor } from './guest-descriptor.ts';
import { TARGETS } from './targets.ts';

/** QEMU's device for a disk on each bus (the ones the stick's machine uses), and for each card. */
const DISK_DEVICE: Partial<Record<DiskBus, string>> = { 'virtio-blk': 'virtio-blk-pci', sata: 'ide-hd' };
const NIC_DEVICE: Record<NicModel, string> = { 'virtio-net': 'virtio-net-pci', e1000: 'e1000', vmxnet3: 'vmxnet3' };
const devices = TARGETS.qemu.devices.devices!;

/** Single-quoted for sh. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

export function qemuScript(descriptor: GuestDescriptor, files: { kernel: string; initrd: string; disks: string[] }): string {
  const lines = [
    `-name ${shellQuote(descriptor.name)}`,
    `-machine ${descriptor.machine},accel="\${POCKETVM_ACCEL:-kvm:tcg}"`,
    `-m ${descriptor.memoryMiB} -smp ${descriptor.cpus}`,
    `-nodefaults -no-user-config`,
    `-kernel "$here"/${shellQuote(files.kernel)} -initrd "$here"/${shellQuote(files.initrd)}`,
    `-append ${shellQuote(descriptor.boot.cmdline)}`,
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
    `# ${descriptor.name}, exported from a pocketvm stick (payload ${descriptor.payload}).`,
    '# POCKETVM_ACCEL (kvm:tcg), POCKETVM_SERIAL (mon:stdio) and POCKETVM_AGENT_SOCKET',
    '# change the accelerator, where the console goes and the guest agent socket;',
    '# further arguments are passed to QEMU.',
    'set -e',
    'here=$(cd "$(dirname "$0")" && pwd)',
    `exec "\${QEMU:-qemu-system-x86_64}" \\`,
    ...lines.map((line) => `  ${line} \\`),
    '  "$@"',
    '',
  ].join('\n');
}
