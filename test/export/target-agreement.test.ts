// One target table (src/images/hypervisor-targets.ts): for every export
// target that carries a machine, the disk bus and NIC the exporter WRITES
// (parsed back from the libvirt XML, the qm configuration, the OVF, the QEMU
// script) are the devices `image adapt --for` plans the image's drivers for.
// When the two disagree an adapted image is exported onto a controller its
// initramfs has no driver for, and does not boot.
import assert from 'node:assert/strict';
import { libvirtDomain } from '../../src/export/libvirt-domain.ts';
import { ovfDescriptor } from '../../src/export/ovf-descriptor.ts';
import { proxmoxConfig } from '../../src/export/proxmox-config.ts';
import { qemuScript } from '../../src/export/qemu-script.ts';
import { EXPORT_TARGETS, hypervisorOf, type ExportTarget } from '../../src/export/targets.ts';
import { driversFor, type DiskBus, type NicModel } from '../../src/images/hypervisor-targets.ts';
import { parseProbe, planAdapt } from '../../src/images/image-adapt.ts';
import { testDescriptor } from './descriptor-fixture.ts';

const payloadGuest = testDescriptor();

/** A guest made from a catalog image that adapt readied for `devices` (its lineage's record), booting from its disk. */
function catalogGuest(devices: { disk: DiskBus; nic: NicModel } | undefined) {
  return testDescriptor({
    kind: 'catalog-image',
    boot: { from: 'disk', bootloader: 'grub' },
    disks: [{ role: 'system', name: 'system', base: '/s/image.qcow2', baseFormat: 'qcow2', sizeBytes: 1 << 30, bus: 'virtio-blk' }],
    facts: { os: 'linux', drives: devices ? { diskBus: devices.disk, nicModel: devices.nic } : { diskBus: null, nicModel: null } },
  });
}

const one = <T>(found: T[], what: string): T => {
  assert.equal(found.length, 1, `${what}: ${JSON.stringify(found)}`);
  return found[0]!;
};

/** The devices as written in TARGET's own file, named back in the table's words. */
function written(target: ExportTarget, descriptor = payloadGuest): { disk: DiskBus; nic: NicModel } {
  const disks = descriptor.disks.map(() => 'web-system.qcow2');
  if (target === 'libvirt') {
    const text = libvirtDomain(descriptor, { kernel: 'k', initrd: 'i', disks, consoleLog: 'c' }, 'qemu');
    const bus = one(
      [...text.matchAll(/<target dev='\w+' bus='(\w+)'\/>/g)].map((m) => m[1]!),
      'disk bus',
    );
    const model = one(
      [...text.matchAll(/<interface[^]*?<model type='(\w+)'\/>/g)].map((m) => m[1]!),
      'nic model',
    );
    return {
      disk: ({ virtio: 'virtio-blk', scsi: 'virtio-scsi', sata: 'sata', ide: 'ide' } as const)[bus as 'virtio']!,
      nic: model === 'virtio' ? 'virtio-net' : (model as NicModel),
    };
  }
  if (target === 'qemu') {
    const text = qemuScript(descriptor, { kernel: 'k', initrd: 'i', disks });
    const device = one(
      [...text.matchAll(/-device ([\w-]+),drive=disk0/g)].map((m) => m[1]!),
      'disk device',
    );
    const nic = one(
      [...text.matchAll(/model=([\w-]+),mac=/g)].map((m) => m[1]!),
      'nic device',
    );
    // ide-hd on q35 is a disk on its AHCI (SATA) controller; scsi-hd on the virtio-scsi-pci the script adds.
    const disk = ({ 'virtio-blk-pci': 'virtio-blk', 'ide-hd': 'sata', 'scsi-hd': 'virtio-scsi' } as const)[device as 'ide-hd'];
    return { disk, nic: nic === 'virtio-net-pci' ? 'virtio-net' : (nic as NicModel) };
  }
  if (target === 'proxmox') {
    const text = proxmoxConfig(descriptor, 100, 'local-lvm');
    const key = one(
      [...text.matchAll(/^(virtio|scsi|sata|ide)0: /gm)].map((m) => m[1]!),
      'disk key',
    );
    const hw = /^scsihw: (.*)$/m.exec(text)?.[1];
    const nic = one(
      [...text.matchAll(/^net0: (\w+)=/gm)].map((m) => m[1]!),
      'net0',
    );
    const disk: DiskBus = key === 'virtio' ? 'virtio-blk' : key === 'scsi' ? (hw?.startsWith('virtio-scsi') ? 'virtio-scsi' : 'lsilogic') : (key as DiskBus);
    return { disk, nic: nic === 'virtio' ? 'virtio-net' : (nic as NicModel) };
  }
  const text = ovfDescriptor(
    descriptor,
    [{ file: 'web-system.vmdk', fileBytes: 1, capacityBytes: 1 << 30 }],
    target === 'vmware-ova' ? 'vmware' : 'virtualbox',
  );
  const controller = one(
    [...text.matchAll(/<rasd:ResourceSubType>(\w+)<\/rasd:ResourceSubType>\s*<rasd:ResourceType>(5|6|20)</g)].map((m) => m[1]!),
    'controller',
  );
  const nic = one(
    [...text.matchAll(/<rasd:ResourceSubType>(\w+)<\/rasd:ResourceSubType>\s*<rasd:ResourceType>10</g)].map((m) => m[1]!),
    'nic',
  );
  return {
    disk: ({ lsilogic: 'lsilogic', AHCI: 'sata', PIIX4: 'ide' } as const)[controller as 'AHCI']!,
    nic: ({ VmxNet3: 'vmxnet3', E1000: 'e1000', virtio: 'virtio-net' } as const)[nic as 'E1000']!,
  };
}

/** A Debian whose kernel has every driver as a module, none in its initramfs: adapt must add the target's. */
function probeFor(modules: string[]) {
  return parseProbe([
    'probe kernel 6.1.0-28-amd64',
    'probe initramfs-tool update-initramfs',
    ...[...modules, 'ahci', 'e1000'].map((m) => `probe driver ${m} available`),
    'probe distribution debian bookworm',
    'probe arch amd64',
  ]);
}

describe('one target table: adapt plans what export writes', () => {
  for (const target of EXPORT_TARGETS) {
    const hypervisor = hypervisorOf(target);
    if (hypervisor === undefined) continue;
    it(`${target}: the written disk bus and NIC are the ones adapt --for ${hypervisor} readies the image for`, () => {
      const plan = planAdapt(hypervisor, probeFor(driversFor(hypervisor)));
      assert.deepEqual(written(target), plan.devices);
      assert.deepEqual(
        plan.steps.find((s) => s.kind === 'drivers'),
        { kind: 'drivers', modules: driversFor(hypervisor) },
      );
    });
  }

  for (const target of EXPORT_TARGETS) {
    const hypervisor = hypervisorOf(target);
    if (hypervisor === undefined) continue;
    it(`${target}: a catalog image's guest gets the devices adapt --for ${hypervisor} readied its image for, else SATA and e1000`, () => {
      const plan = planAdapt(hypervisor, probeFor(driversFor(hypervisor)));
      assert.deepEqual(written(target, catalogGuest(plan.devices)), plan.devices);
      assert.deepEqual(written(target, catalogGuest(undefined)), { disk: 'sata', nic: 'e1000' });
    });
  }

  it('every export target but nocloud names a hypervisor of the table', () => {
    assert.deepEqual(
      EXPORT_TARGETS.filter((t) => hypervisorOf(t) === undefined),
      ['nocloud'],
    );
  });
});
