// A libvirt domain for an exported guest (docs/export.md, "The targets"): the
// stick's machine as libvirt says it (q35, the payload's kernel and initramfs
// booted directly, the system disk on virtio with the serial its initramfs
// finds it by, the guest agent's port, the serial console logged to a file
// beside the disk). A catalog image's guest boots from its disk instead, by
// BIOS or UEFI (libvirt's firmware auto-selection picks an OVMF build), on
// the devices its initramfs drives. `virsh define DIR/NAME.xml` takes it as
// written.
import type { DiskBus, NicModel } from '../images/hypervisor-targets.ts';
import { type GuestDescriptor, sourceOf } from './guest-descriptor.ts';
import { devicesOn } from './targets.ts';
import { xml } from './xml-text.ts';

/** libvirt's bus and device-name prefix for each disk bus, its model for each card. */
export const DISK_TARGET: Record<DiskBus, { bus: string; dev: string }> = {
  'virtio-blk': { bus: 'virtio', dev: 'vd' },
  'virtio-scsi': { bus: 'scsi', dev: 'sd' },
  lsilogic: { bus: 'scsi', dev: 'sd' },
  sata: { bus: 'sata', dev: 'sd' },
  ide: { bus: 'ide', dev: 'hd' },
};
export const NIC_MODEL: Record<NicModel, string> = { 'virtio-net': 'virtio', e1000: 'e1000', vmxnet3: 'vmxnet3' };

export interface LibvirtFiles {
  /** The kernel and initramfs beside the disks: a guest that boots them directly. */
  kernel?: string;
  initrd?: string;
  /** The disks in the descriptor's order (absolute paths). */
  disks: string[];
  consoleLog: string;
}

/** `qemu` is TCG (what the tests boot here), `kvm` a host with hardware virtualisation. */
export type LibvirtDomainType = 'kvm' | 'qemu';

/** The <os> element: the kernel given to the machine, or the disk's own bootloader under BIOS or UEFI. */
function osElement(descriptor: GuestDescriptor, files: LibvirtFiles): string[] {
  const type = `    <type arch='x86_64' machine='${descriptor.machine}'>hvm</type>`;
  const { boot } = descriptor;
  if (boot.from === 'disk') return [descriptor.firmware === 'uefi' ? `  <os firmware='efi'>` : `  <os>`, type, `    <boot dev='hd'/>`, `  </os>`];
  if (!files.kernel || !files.initrd) throw new Error(`internal: ${descriptor.name} boots a kernel and none was written`);
  return [
    `  <os>`,
    type,
    `    <kernel>${xml(files.kernel)}</kernel>`,
    `    <initrd>${xml(files.initrd)}</initrd>`,
    `    <cmdline>${xml(boot.cmdline)}</cmdline>`,
    `  </os>`,
  ];
}

export function libvirtDomain(descriptor: GuestDescriptor, files: LibvirtFiles, type: LibvirtDomainType): string {
  const devices = devicesOn('libvirt', descriptor.facts.drives);
  const disks = descriptor.disks.map((disk, index) =>
    [
      `    <disk type='file' device='disk'>`,
      `      <driver name='qemu' type='qcow2'/>`,
      `      <source file='${xml(files.disks[index]!)}'/>`,
      `      <target dev='${DISK_TARGET[devices.diskBus].dev}${String.fromCharCode(97 + index)}' bus='${DISK_TARGET[devices.diskBus].bus}'/>`,
      ...(disk.serial ? [`      <serial>${xml(disk.serial)}</serial>`] : []),
      `    </disk>`,
    ].join('\n'),
  );
  // type='user': the stick's own network (QEMU's user mode), no bridge or libvirt network to have made first.
  const nics = descriptor.nics.map((nic) =>
    [`    <interface type='user'>`, `      <mac address='${xml(nic.mac)}'/>`, `      <model type='${NIC_MODEL[devices.nicModel]}'/>`, `    </interface>`].join(
      '\n',
    ),
  );
  const display =
    descriptor.display === 'vga' ? [`    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>`, `    <video><model type='virtio'/></video>`] : [];
  return [
    `<domain type='${type}'>`,
    `  <name>${xml(descriptor.name)}</name>`,
    `  <description>exported from a pocketvm stick (${xml(sourceOf(descriptor))})</description>`,
    `  <memory unit='MiB'>${descriptor.memoryMiB}</memory>`,
    `  <vcpu>${descriptor.cpus}</vcpu>`,
    ...osElement(descriptor, files),
    `  <features><acpi/></features>`,
    `  <on_poweroff>destroy</on_poweroff>`,
    `  <on_reboot>restart</on_reboot>`,
    `  <on_crash>destroy</on_crash>`,
    `  <devices>`,
    ...disks,
    ...nics,
    `    <serial type='pty'>`,
    `      <log file='${xml(files.consoleLog)}' append='off'/>`,
    `      <target port='0'/>`,
    `    </serial>`,
    `    <console type='pty'><target type='serial' port='0'/></console>`,
    `    <channel type='unix'><target type='virtio' name='${descriptor.agentChannel}'/></channel>`,
    ...display,
    `    <memballoon model='none'/>`,
    `  </devices>`,
    `</domain>`,
    '',
  ].join('\n');
}
