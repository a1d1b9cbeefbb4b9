// A shell script that starts the exported guest with qemu-system-x86_64
// (docs/export.md, "The targets"): the same machine the stick runs, written as one
// command line a person can read and change. Paths are relative to the
// script's folder, so the folder can be moved; extra arguments pass through.
import type { GuestDescriptor } from './guest-descriptor.ts';

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
      `-device virtio-blk-pci,drive=disk${index}${disk.serial ? `,serial=${disk.serial}` : ''}`,
    ]),
    ...descriptor.nics.map((nic, index) => `-nic user,id=net${index},model=virtio-net-pci,mac=${nic.mac}`),
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
