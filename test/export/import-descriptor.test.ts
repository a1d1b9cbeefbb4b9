// `launcher import`'s descriptor readers (src/export/import-descriptor.ts):
// each reads back what the exporter's own writers wrote (the OVF dialects,
// the libvirt domain, the QEMU script, the Proxmox configuration and
// import.sh) — name, firmware, memory, CPUs, NIC MACs and models, disk buses —
// and the forms other tools write (virt-v2v's -o local domain, a VMware OVF
// saying EFI, a Proxmox configuration on OVMF with path volumes); a folder
// without a descriptor, a descriptor naming a missing disk, a non-x86 machine
// and broken XML are refused with their exit codes (59, 60).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitCode, PocketError } from '../../src/errors.ts';
import { readExport, readLibvirtDomain, readOvf, readProxmoxConfig, readQemuScript } from '../../src/export/import-descriptor.ts';
import { libvirtDomain } from '../../src/export/libvirt-domain.ts';
import { ovfDescriptor } from '../../src/export/ovf-descriptor.ts';
import { proxmoxConfig, proxmoxImportScript } from '../../src/export/proxmox-config.ts';
import { qemuScript } from '../../src/export/qemu-script.ts';
import { testDescriptor } from './descriptor-fixture.ts';

const descriptor = testDescriptor({
  name: 'web & co',
  cpus: 3,
  memoryMiB: 768,
  boot: { from: 'kernel', kernel: '/s/vmlinuz', initrd: '/s/initrd.img', cmdline: "console=ttyS0 it's" },
  disks: [
    { role: 'system', name: 'system', base: '/s/base.ext4', sizeBytes: 1 << 30, bus: 'virtio-blk', serial: 'pocketvm-root' },
    { role: 'extra', name: 'data', sizeBytes: 1 << 20, bus: 'virtio-blk' },
  ],
});
const ovfDisks = [
  { file: 'web-system.vmdk', fileBytes: 10, capacityBytes: 1 << 30 },
  { file: 'web-data.vmdk', fileBytes: 10, capacityBytes: 1 << 20 },
];

function refusedWith(kind: keyof typeof ExitCode, reason: string) {
  return (error: unknown) => {
    assert.ok(error instanceof PocketError, String(error));
    assert.equal(error.exit, kind, error.message);
    assert.equal(error.details.reason, reason, error.message);
    assert.equal(error.message.includes('\n'), false, 'one line');
    return true;
  };
}

describe('import descriptor readers', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pocketvm-import-desc-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads our VMware and VirtualBox OVFs back: name, memory, CPUs, MAC and model, the disk controllers', () => {
    const vmware = readOvf(ovfDescriptor(descriptor, ovfDisks, 'vmware'));
    assert.deepEqual(vmware, {
      name: 'web & co',
      machine: 'vmx-14',
      cpus: 3,
      memoryMiB: 768,
      nics: [{ mac: '52:54:00:12:34:56', model: 'VmxNet3' }],
      diskBuses: ['lsilogic', 'lsilogic'],
      firmware: 'bios',
    });
    const vbox = readOvf(ovfDescriptor(descriptor, ovfDisks, 'virtualbox'));
    assert.equal(vbox.machine, 'virtualbox-2.2');
    assert.deepEqual(vbox.diskBuses, ['AHCI', 'AHCI']);
    assert.deepEqual(vbox.nics, [{ mac: '52:54:00:12:34:56', model: 'E1000' }]);
  });

  it("reads others' OVFs: VMware's EFI config, memory in GiB, a NIC with no MAC", () => {
    const ovf = `<?xml version="1.0"?>
<ovf:Envelope xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="r" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <ovf:VirtualSystem ovf:id="vm1"><ovf:VirtualHardwareSection>
    <ovf:Item><rasd:AllocationUnits>byte * 2^30</rasd:AllocationUnits><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></ovf:Item>
    <ovf:Item><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>4</rasd:VirtualQuantity></ovf:Item>
    <ovf:Item><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType></ovf:Item>
    <ovf:Item><rasd:Parent>5</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></ovf:Item>
    <ovf:Item><rasd:ResourceSubType>E1000</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></ovf:Item>
    <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
  </ovf:VirtualHardwareSection></ovf:VirtualSystem>
</ovf:Envelope>`;
    assert.deepEqual(readOvf(ovf), { name: 'vm1', memoryMiB: 2048, cpus: 4, nics: [{ model: 'E1000' }], diskBuses: ['ide'], firmware: 'uefi' });
  });

  it('reads our libvirt domain back, and the one virt-v2v -o local writes', () => {
    const ours = readLibvirtDomain(
      libvirtDomain(descriptor, { kernel: '/d/vmlinuz', initrd: '/d/initrd.img', disks: ['/d/a.qcow2', '/d/b.qcow2'], consoleLog: '/d/log' }, 'qemu'),
    );
    assert.deepEqual(ours.disks, ['/d/a.qcow2', '/d/b.qcow2']);
    assert.deepEqual(ours.machine, {
      name: 'web & co',
      memoryMiB: 768,
      cpus: 3,
      architecture: 'x86_64',
      machine: 'q35',
      firmware: 'bios',
      nics: [{ mac: '52:54:00:12:34:56', model: 'virtio' }],
      diskBuses: ['virtio', 'virtio'],
    });
    const v2v = readLibvirtDomain(`<?xml version='1.0' encoding='utf-8'?>
<domain type='kvm'>
  <!-- generated by virt-v2v -->
  <name>deb</name>
  <memory unit='KiB'>1048576</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type><loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/out/deb-sda'/><target dev='vda' bus='virtio'/></disk>
    <disk device='cdrom' type='file'><target dev='hdc' bus='sata'/></disk>
    <interface type='network'><source network='default'/><model type='virtio'/><mac address='52:54:00:AB:CD:EF'/></interface>
  </devices>
</domain>`);
    assert.deepEqual(v2v.disks, ['/out/deb-sda']);
    assert.equal(v2v.machine.memoryMiB, 1024);
    assert.equal(v2v.machine.firmware, 'uefi');
    assert.deepEqual(v2v.machine.nics, [{ mac: '52:54:00:ab:cd:ef', model: 'virtio' }]);
  });

  it('reads our QEMU script back, and a hand-written command line with -drive, -bios OVMF and -device e1000', () => {
    const ours = readQemuScript(qemuScript(descriptor, { kernel: 'vmlinuz', initrd: 'initrd.img', disks: ['web-system.qcow2', 'web-data.qcow2'] }));
    assert.deepEqual(ours.disks, ['web-system.qcow2', 'web-data.qcow2']);
    assert.deepEqual(ours.machine, {
      architecture: 'x86_64',
      name: 'web & co',
      machine: 'q35',
      memoryMiB: 768,
      cpus: 3,
      firmware: 'bios',
      nics: [{ mac: '52:54:00:12:34:56', model: 'virtio-net-pci' }],
      diskBuses: ['virtio', 'virtio'],
    });
    const hand = readQemuScript(
      '#!/bin/sh\n# a comment -m 99\nqemu-system-x86_64 -m 2G -smp cpus=2 -bios /usr/share/ovmf/OVMF.fd \\\n  -drive file=disk.img,if=virtio,format=raw -drive file=x.iso,media=cdrom \\\n  -device e1000,netdev=n0,mac=52:54:00:00:00:01\n',
    );
    assert.deepEqual(hand.disks, ['disk.img']);
    assert.equal(hand.machine.memoryMiB, 2048);
    assert.equal(hand.machine.cpus, 2);
    assert.equal(hand.machine.firmware, 'uefi');
    assert.equal(hand.machine.architecture, 'x86_64');
    assert.deepEqual(hand.machine.nics, [{ mac: '52:54:00:00:00:01', model: 'e1000' }]);
    assert.throws(() => readQemuScript('#!/bin/sh\necho hello\n'), refusedWith('importSource', 'bad-descriptor'));
  });

  it('reads our Proxmox configuration and import.sh back, and a configuration on OVMF with path volumes', () => {
    const ours = readProxmoxConfig(proxmoxConfig(descriptor, 100, 'local-lvm'), proxmoxImportScript(descriptor, ['web-system.qcow2', 'web-data.qcow2']));
    assert.deepEqual(ours.disks, ['web-system.qcow2', 'web-data.qcow2']);
    assert.deepEqual(ours.machine, {
      name: 'web & co',
      memoryMiB: 768,
      cpus: 3,
      firmware: 'bios',
      machine: 'q35',
      nics: [{ mac: '52:54:00:12:34:56', model: 'virtio' }],
      diskBuses: ['scsi', 'scsi'],
    });
    const other = readProxmoxConfig(
      'bios: ovmf\ncores: 2\nsockets: 2\nmemory: 4096\nname: win\nnet0: e1000=BC:24:11:00:00:01,bridge=vmbr0\nsata0: /var/lib/vz/images/101/disk.qcow2,size=32G\nide2: none,media=cdrom\n[snap1]\nmemory: 1\n',
      undefined,
    );
    assert.deepEqual(other.disks, ['/var/lib/vz/images/101/disk.qcow2']);
    assert.deepEqual(other.machine, {
      name: 'win',
      memoryMiB: 4096,
      cpus: 4,
      firmware: 'uefi',
      nics: [{ mac: 'bc:24:11:00:00:01', model: 'e1000' }],
      diskBuses: ['sata'],
    });
    assert.throws(() => readProxmoxConfig('this is not\n', undefined), refusedWith('importSource', 'bad-descriptor'));
  });

  it('finds the descriptor in an export folder and its disks there, also after the folder was moved', async () => {
    const moved = join(dir, 'moved');
    await mkdir(moved);
    const xml = libvirtDomain(
      descriptor,
      { kernel: '/gone/vmlinuz', initrd: '/gone/initrd.img', disks: ['/gone/a.qcow2', '/gone/b.qcow2'], consoleLog: '/gone/log' },
      'kvm',
    );
    await writeFile(join(moved, 'web.xml'), xml);
    await writeFile(join(moved, 'a.qcow2'), 'x');
    await writeFile(join(moved, 'b.qcow2'), 'x');
    const read = await readExport(moved);
    assert.equal(read.kind, 'libvirt');
    assert.deepEqual(read.disks, [join(moved, 'a.qcow2'), join(moved, 'b.qcow2')]);
    const qemu = join(dir, 'qemu');
    await mkdir(qemu);
    await writeFile(join(qemu, 'run.sh'), qemuScript(descriptor, { kernel: 'vmlinuz', initrd: 'initrd.img', disks: ['s.qcow2', 'd.qcow2'] }));
    await writeFile(join(qemu, 's.qcow2'), 'x');
    await assert.rejects(readExport(qemu), refusedWith('importDisk', 'missing-disk'));
    await writeFile(join(qemu, 'd.qcow2'), 'x');
    assert.deepEqual((await readExport(join(qemu, 'run.sh'))).disks, [join(qemu, 's.qcow2'), join(qemu, 'd.qcow2')]);
  });

  it('refuses what is not an export, broken XML and a non-x86 machine, each with one line and its code', async () => {
    await assert.rejects(readExport(join(dir, 'nothing')), refusedWith('importSource', 'no-source'));
    await writeFile(join(dir, 'notes.txt'), 'hello');
    await assert.rejects(readExport(dir), refusedWith('importSource', 'no-descriptor'));
    await assert.rejects(readExport(join(dir, 'notes.txt')), refusedWith('importSource', 'no-descriptor'));
    await writeFile(join(dir, 'cut.xml'), "<domain type='kvm'><name>x</name><devices><disk device='disk'>");
    await assert.rejects(readExport(dir), refusedWith('importSource', 'bad-descriptor'));
    await writeFile(
      join(dir, 'cut.xml'),
      "<domain type='kvm'><os><type arch='aarch64'>hvm</type></os><devices><disk device='disk'><source file='a.raw'/></disk></devices></domain>",
    );
    await writeFile(join(dir, 'a.raw'), 'x');
    await assert.rejects(readExport(dir), refusedWith('importSource', 'unsupported'));
    assert.equal(ExitCode.importSource, 59);
    assert.equal(ExitCode.importDisk, 60);
  });
});
