// The exporters' text (src/export/): the libvirt domain, the OVF dialects, the
// OVA's tar and manifest read back by the importer's own tar reader, the
// Proxmox settings, the NoCloud seed and the loss report, from one descriptor.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { libvirtDomain } from '../../src/export/libvirt-domain.ts';
import { lossReport } from '../../src/export/loss-report.ts';
import { nocloudSeed } from '../../src/export/nocloud-seed.ts';
import { ovfManifest, writeOva } from '../../src/export/ova-package.ts';
import { ovfDescriptor } from '../../src/export/ovf-descriptor.ts';
import { proxmoxConfig, proxmoxImportScript } from '../../src/export/proxmox-config.ts';
import { qemuScript } from '../../src/export/qemu-script.ts';
import { EXPORT_TARGETS, TARGETS } from '../../src/export/targets.ts';
import { readLibvirtDomain, readOvf, readProxmoxConfig, readQemuScript } from '../../src/export/import-descriptor.ts';
import { ovfDiskFiles, tarMembers } from '../../src/images/ova.ts';
import { testDescriptor } from './descriptor-fixture.ts';

const descriptor = testDescriptor({ stickOnly: { shares: ['docs (/host/docs)'], devices: [] } });

describe('export writers', () => {
  it('writes a libvirt domain with direct kernel boot, the disk serial, the agent channel and the MAC', () => {
    const text = libvirtDomain(descriptor, { kernel: '/d/vmlinuz', initrd: '/d/initrd.img', disks: ['/d/web-system.qcow2'], consoleLog: '/d/web.log' }, 'qemu');
    assert.match(text, /^<domain type='qemu'>/);
    assert.match(text, /<kernel>\/d\/vmlinuz<\/kernel>/);
    assert.match(text, /<cmdline>console=ttyS0 pocketvm.root=pocketvm-root it&apos;s<\/cmdline>/);
    assert.match(text, /<serial>pocketvm-root<\/serial>/);
    assert.match(text, /<mac address='52:54:00:12:34:56'\/>/);
    assert.match(text, /name='org.qemu.guest_agent.0'/);
    assert.match(text, /<memory unit='MiB'>512<\/memory>/);
  });

  it('writes the VMware and VirtualBox OVF dialects, each Item’s rasd elements in schema order', () => {
    const vmware = ovfDescriptor(descriptor, [{ file: 'web-system.vmdk', fileBytes: 1234, capacityBytes: 1 << 30 }], 'vmware');
    const vbox = ovfDescriptor(descriptor, [{ file: 'web-system.vmdk', fileBytes: 1234, capacityBytes: 1 << 30 }], 'virtualbox');
    assert.match(vmware, /<vssd:VirtualSystemType>vmx-14<\/vssd:VirtualSystemType>/);
    assert.match(vmware, /<rasd:ResourceSubType>lsilogic<\/rasd:ResourceSubType>/);
    assert.match(vmware, /<rasd:ResourceSubType>VmxNet3<\/rasd:ResourceSubType>/);
    assert.match(vbox, /<vssd:VirtualSystemType>virtualbox-2.2<\/vssd:VirtualSystemType>/);
    assert.match(vbox, /<rasd:ResourceSubType>AHCI<\/rasd:ResourceSubType>/);
    assert.match(vbox, /<rasd:ResourceSubType>E1000<\/rasd:ResourceSubType>/);
    for (const text of [vmware, vbox]) {
      assert.deepEqual(ovfDiskFiles(text), ['web-system.vmdk']);
      assert.match(text, /vmdk.html#streamOptimized/);
      for (const item of text.matchAll(/<Item>([\s\S]*?)<\/Item>/g)) {
        const names = [...item[1]!.matchAll(/<rasd:(\w+)>/g)].map((m) => m[1]!);
        assert.deepEqual(names, [...names].sort(), `rasd order in ${item[1]}`);
      }
    }
  });

  it('packs an OVA the importer’s tar reader lists whole, descriptor first, with SHA256 in its manifest', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pocketvm-export-unit-'));
    try {
      const disk = join(dir, 'disk.vmdk');
      await writeFile(disk, Buffer.alloc(1000, 7));
      const ovf = { name: 'web.ovf', data: Buffer.from('<Envelope/>') };
      const members = [ovf, { name: 'web-system.vmdk', data: { path: disk } }];
      const mf = { name: 'web.mf', data: await ovfManifest(members) };
      await writeOva(join(dir, 'web.ova'), [ovf, mf, members[1]!]);
      const bytes = await readFile(join(dir, 'web.ova'));
      const listed = tarMembers((offset, length) => bytes.subarray(offset, offset + length), bytes.length);
      assert.deepEqual(
        listed.map((m) => [m.name, m.bytes]),
        [
          ['web.ovf', 11],
          ['web.mf', mf.data.length],
          ['web-system.vmdk', 1000],
        ],
      );
      const vmdk = listed[2]!;
      const digest = createHash('sha256')
        .update(bytes.subarray(vmdk.offset, vmdk.offset + vmdk.bytes))
        .digest('hex');
      assert.match(mf.data.toString(), new RegExp(`^SHA256\\(web-system.vmdk\\)= ${digest}$`, 'm'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('writes the Proxmox settings and the qm commands, the disk imported with its serial', () => {
    const conf = proxmoxConfig(descriptor, 105, 'tank');
    assert.match(conf, /^cores: 2$/m);
    assert.match(conf, /^memory: 512$/m);
    assert.match(conf, /^net0: virtio=52:54:00:12:34:56,bridge=vmbr0$/m);
    // Proxmox's own default controller, as the one target table says (src/images/hypervisor-targets.ts).
    assert.match(conf, /^scsihw: virtio-scsi-single$/m);
    assert.match(conf, /^scsi0: tank:vm-105-disk-0,serial=pocketvm-root$/m);
    assert.match(conf, /^boot: order=scsi0$/m);
    assert.match(conf, /^args: -kernel \/var\/lib\/vz\/pocketvm\/web\/vmlinuz /m);
    const script = proxmoxImportScript(descriptor, ['web-system.qcow2']);
    assert.match(script, /qm set "\$vmid" --scsi0 "\$storage:0,import-from=\$here\/web-system.qcow2,serial=pocketvm-root"/);
  });

  it('writes a QEMU script whose quoted command line keeps the kernel command line whole', () => {
    const script = qemuScript(descriptor, { kernel: 'vmlinuz', initrd: 'initrd.img', disks: ['web-system.qcow2'] });
    assert.match(script, /-append 'console=ttyS0 pocketvm.root=pocketvm-root it'\\''s'/);
    assert.match(script, /virtio-blk-pci,drive=disk0,serial=pocketvm-root/);
    assert.match(script, /mac=52:54:00:12:34:56/);
  });

  it('writes a NoCloud seed: host name, user with keys, network matched by MAC', () => {
    const seed = nocloudSeed(descriptor, { hostname: 'web', user: 'alice', sshKeys: ['ssh-ed25519 AAAAC3Nza alice@x'] });
    assert.match(seed['meta-data'], /^local-hostname: "web"$/m);
    assert.match(seed['user-data'], /^#cloud-config\n/);
    assert.match(seed['user-data'], /^ {2}- name: "alice"$/m);
    assert.match(seed['user-data'], /^ {6}- "ssh-ed25519 AAAAC3Nza alice@x"$/m);
    assert.match(seed['network-config'], /macaddress: "52:54:00:12:34:56"/);
  });

  it('reports what each target cannot carry, from the capability table', () => {
    const parts = (target: (typeof EXPORT_TARGETS)[number], user?: string) => lossReport(descriptor, target, user).map((loss) => loss.part);
    assert.deepEqual(parts('libvirt'), ['shares', 'home', 'registry', 'user-changes']);
    assert.deepEqual(parts('libvirt', 'alice'), ['shares', 'home', 'registry', 'encryption']);
    assert.deepEqual(parts('vmware-ova'), ['boot', 'disk-serial', 'agent', 'disk-bus', 'nic-model', 'shares', 'home', 'registry', 'user-changes']);
    assert.deepEqual(parts('nocloud'), ['hardware', 'shares']);
    for (const target of EXPORT_TARGETS) assert.equal(TARGETS[target].target, target);
    assert.deepEqual(parts('proxmox'), ['disk-bus', 'shares', 'home', 'registry', 'user-changes']);
  });
});

/** A guest made from a catalog image (guest create --from): it boots its own GRUB from its disk, by BIOS or UEFI. */
function catalogGuest(firmware: 'bios' | 'uefi', drives: { diskBus: 'virtio-blk' | null; nicModel: 'virtio-net' | null }) {
  return testDescriptor({
    name: 'deb',
    payload: 'default',
    kind: 'catalog-image',
    firmware,
    boot: { from: 'disk', bootloader: 'grub' },
    disks: [{ role: 'system', name: 'system', base: '/s/store/abc.qcow2', baseFormat: 'qcow2', sizeBytes: 3 << 30, bus: 'virtio-blk' }],
    stickOnly: { shares: ['docs (/host/docs)'], devices: ['rng0 (rng)'] },
    facts: { os: 'linux', image: { name: 'deb-pocketvm', sha256: 'a'.repeat(64), distribution: 'debian' }, drives },
  });
}
const NO_VIRTIO = { diskBus: null, nicModel: null };
const VIRTIO = { diskBus: 'virtio-blk', nicModel: 'virtio-net' } as const;

describe('export writers: a guest made from a catalog image boots from its disk', () => {
  const files = { disks: ['/d/deb-system.qcow2'], consoleLog: '/d/deb.console.log' };

  it('libvirt: no kernel, <boot dev=hd/>, firmware efi only for a UEFI image, devices its initramfs drives; virt-xml-validate passes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pocketvm-export-unit-'));
    try {
      for (const [firmware, drives] of [
        ['bios', NO_VIRTIO],
        ['uefi', VIRTIO],
      ] as const) {
        const text = libvirtDomain(catalogGuest(firmware, drives), files, 'qemu');
        assert.doesNotMatch(text, /<kernel>|<initrd>|<cmdline>/);
        assert.match(text, /<boot dev='hd'\/>/);
        assert.match(text, /exported from a pocketvm stick \(image deb-pocketvm\)/);
        assert.equal(/<os firmware='efi'>/.test(text), firmware === 'uefi');
        const read = readLibvirtDomain(text);
        assert.equal(read.machine.firmware, firmware);
        assert.deepEqual(read.machine.diskBuses, [drives.diskBus ? 'virtio' : 'sata']);
        assert.deepEqual(read.machine.nics, [{ mac: '52:54:00:12:34:56', model: drives.nicModel ? 'virtio' : 'e1000' }]);
        const xml = join(dir, `${firmware}.xml`);
        await writeFile(xml, text);
        // libvirt's own schema (libvirt-clients, installed by .ci/run for the export tests).
        execFileSync('virt-xml-validate', [xml, 'domain'], { stdio: 'pipe' });
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('OVF: the emulated controller and card for an image without virtio, VMware’s firmware=efi for a UEFI one', () => {
    const disks = [{ file: 'deb-system.vmdk', fileBytes: 1234, capacityBytes: 3 << 30 }];
    const vmware = ovfDescriptor(catalogGuest('uefi', NO_VIRTIO), disks, 'vmware');
    assert.match(vmware, /<rasd:ResourceSubType>AHCI<\/rasd:ResourceSubType>/);
    assert.match(vmware, /<rasd:ResourceSubType>E1000<\/rasd:ResourceSubType>/);
    assert.match(vmware, /<vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"\/>/);
    assert.match(vmware, /xmlns:vmw="http:\/\/www.vmware.com\/schema\/ovf"/);
    assert.equal(readOvf(vmware).firmware, 'uefi');
    const bios = ovfDescriptor(catalogGuest('bios', NO_VIRTIO), disks, 'vmware');
    assert.doesNotMatch(bios, /vmw:/);
    assert.equal(readOvf(bios).firmware, 'bios');
    // VirtualBox offers virtio-net, not a virtio disk.
    const vbox = ovfDescriptor(catalogGuest('bios', VIRTIO), disks, 'virtualbox');
    assert.match(vbox, /<rasd:ResourceSubType>AHCI<\/rasd:ResourceSubType>/);
    assert.match(vbox, /<rasd:ResourceSubType>virtio<\/rasd:ResourceSubType>/);
  });

  it('Proxmox: no args:, no kernel installed, OVMF with its vars disk for a UEFI image, the disk on the bus it drives', () => {
    const uefi = catalogGuest('uefi', VIRTIO);
    const conf = proxmoxConfig(uefi, 105, 'tank');
    assert.doesNotMatch(conf, /^args:/m);
    assert.match(conf, /^bios: ovmf$/m);
    assert.match(conf, /^virtio0: tank:vm-105-disk-0$/m);
    assert.match(conf, /^efidisk0: tank:vm-105-disk-1,efitype=4m,pre-enrolled-keys=0$/m);
    assert.match(conf, /^boot: order=virtio0$/m);
    assert.doesNotMatch(conf, /^scsihw:/m);
    assert.equal(readProxmoxConfig(conf, 'deb.conf').machine.firmware, 'uefi');
    const script = proxmoxImportScript(uefi, ['deb-system.qcow2']);
    assert.doesNotMatch(script, /vmlinuz|initrd|args/);
    assert.match(script, /qm set "\$vmid" --virtio0 "\$storage:0,import-from=\$here\/deb-system.qcow2"/);
    assert.match(script, /qm set "\$vmid" --efidisk0 "\$storage:1,efitype=4m,pre-enrolled-keys=0"/);
    const bios = proxmoxConfig(catalogGuest('bios', NO_VIRTIO), 105, 'tank');
    assert.match(bios, /^bios: seabios$/m);
    assert.match(bios, /^sata0: tank:vm-105-disk-0$/m);
    assert.match(bios, /^net0: e1000=52:54:00:12:34:56,bridge=vmbr0$/m);
    assert.doesNotMatch(bios, /efidisk0/);
  });

  it('QEMU: no -kernel, OVMF as -bios for a UEFI image, the disk on q35’s AHCI without virtio', () => {
    const uefi = qemuScript(catalogGuest('uefi', NO_VIRTIO), { disks: ['deb-system.qcow2'] });
    assert.doesNotMatch(uefi, /-kernel|-initrd|-append/);
    assert.match(uefi, /-bios "\$\{POCKETVM_OVMF:-\/usr\/share\/ovmf\/OVMF.fd\}"/);
    assert.match(uefi, /-device ide-hd,drive=disk0 /);
    assert.match(uefi, /model=e1000,mac=/);
    assert.equal(readQemuScript(uefi).machine.firmware, 'uefi');
    const bios = qemuScript(catalogGuest('bios', VIRTIO), { disks: ['deb-system.qcow2'] });
    assert.doesNotMatch(bios, /-bios|-kernel/);
    assert.match(bios, /-device virtio-blk-pci,drive=disk0 /);
  });

  it('reports the stick’s own boot left behind, the devices chosen, the shares, devices and registry', () => {
    const parts = (target: (typeof EXPORT_TARGETS)[number], descriptor: ReturnType<typeof catalogGuest>, user?: string) =>
      lossReport(descriptor, target, user).map((loss) => loss.part);
    const bios = catalogGuest('bios', NO_VIRTIO);
    assert.deepEqual(parts('libvirt', bios), ['boot', 'devices-chosen', 'shares', 'devices', 'home', 'registry', 'user-changes']);
    assert.deepEqual(parts('libvirt', catalogGuest('bios', VIRTIO), 'alice'), ['boot', 'shares', 'devices', 'home', 'registry', 'encryption']);
    assert.deepEqual(parts('virtualbox-ova', catalogGuest('uefi', NO_VIRTIO)), [
      'boot',
      'agent',
      'firmware',
      'shares',
      'devices',
      'home',
      'registry',
      'user-changes',
    ]);
    assert.deepEqual(parts('nocloud', bios), ['hardware', 'shares']);
    const [boot, chosen] = lossReport(bios, 'libvirt', undefined);
    assert.match(boot!.says, /default payload's kernel .* the image's own grub and kernel \(BIOS\)/);
    assert.match(
      chosen!.says,
      /disk on sata and NIC e1000, not libvirt's virtio-blk and virtio-net: .*virtio_blk.*launcher image adapt deb-pocketvm --for libvirt/,
    );
  });
});
