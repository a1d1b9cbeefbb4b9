// `image adapt`'s plan from what the probe found (src/images/image-adapt.ts,
// docs/adapt.md "Pre-flight"): each step only where the target needs it, the
// emulated devices chosen when the initramfs cannot be made again, refusals
// before anything changes. The probe's lines are parsed as pocketvm-customize
// prints them. The boot that proves it: test/integration/image-adapt.test.ts.
import assert from 'node:assert/strict';
import { AdaptError } from '../../src/errors.ts';
import { driversFor } from '../../src/images/hypervisor-targets.ts';
import { parseProbe, planAdapt } from '../../src/images/image-adapt.ts';

/** A Debian made for SATA: no virtio in its initramfs, /dev/sda1 by name, enp0s3, no agent. */
const sataDebian = [
  'probe kernel 6.1.0-28-amd64',
  'probe initramfs-tool update-initramfs',
  'probe initrd /boot/initrd.img-6.1.0-28-amd64',
  ...['virtio_pci', 'virtio_blk', 'virtio_scsi', 'virtio_net', 'virtio_console'].map((m) => `probe driver ${m} available`),
  'probe driver ahci initramfs',
  'probe driver libahci initramfs',
  'probe driver sd_mod initramfs',
  ...['mptspi', 'mptscsih', 'mptbase', 'vmxnet3'].map((m) => `probe driver ${m} available`),
  'probe driver e1000 available',
  'probe fstab-device /dev/sda1 /',
  'probe grub /boot/grub/grub.cfg',
  'probe kernel-root /dev/sda1',
  'probe serial no',
  'probe netname enp0s3',
  'probe distribution debian bookworm',
  'probe arch amd64',
  'probe packages base-files bash dpkg',
  'hostname x',
];

const kinds = (target: Parameters<typeof planAdapt>[0], lines: string[]) => planAdapt(target, parseProbe(lines)).steps.map((s) => s.kind);

describe('image adapt: the plan from the probe', () => {
  it('parses what the probe prints', () => {
    const probe = parseProbe(sataDebian);
    assert.equal(probe.kernel, '6.1.0-28-amd64');
    assert.equal(probe.initramfsTool, 'update-initramfs');
    assert.equal(probe.drivers.virtio_blk, 'available');
    assert.equal(probe.drivers.ahci, 'initramfs');
    assert.deepEqual(probe.fstabDevices, [{ device: '/dev/sda1', mountpoint: '/' }]);
    assert.equal(probe.kernelRoot, '/dev/sda1');
    assert.equal(probe.serial, false);
    assert.deepEqual(probe.netNames, ['enp0s3']);
    assert.deepEqual(probe.distribution, { id: 'debian', codename: 'bookworm' });
    assert.deepEqual(probe.packages, ['base-files', 'bash', 'dpkg']);
  });

  it('for pocketvm: virtio drivers into the initramfs, UUIDs, serial, interface names, the agent', () => {
    const plan = planAdapt('pocketvm', parseProbe(sataDebian));
    assert.deepEqual(
      plan.steps.map((s) => s.kind),
      ['drivers', 'uuid', 'serial', 'netnames'],
    );
    assert.deepEqual(plan.steps[0], { kind: 'drivers', modules: ['virtio_pci', 'virtio_blk', 'virtio_net', 'virtio_console'] });
    assert.equal(plan.agent, true);
    assert.deepEqual(plan.devices, { disk: 'virtio-blk', nic: 'virtio-net' });
    assert.ok(plan.changes.find((c) => c.step === 'uuid')!.what.includes('/dev/sda1'));
  });

  it('for virtualbox: only the e1000 driver, no agent (VirtualBox does not use it)', () => {
    const plan = planAdapt('virtualbox', parseProbe(sataDebian));
    assert.deepEqual(plan.steps[0], { kind: 'drivers', modules: ['e1000'] });
    assert.equal(plan.agent, false);
  });

  it('for vmware and proxmox: the drivers of their own default controllers (LSI Logic, VirtIO SCSI)', () => {
    const vmware = planAdapt('vmware', parseProbe(sataDebian));
    assert.deepEqual(vmware.devices, { disk: 'lsilogic', nic: 'vmxnet3' });
    assert.deepEqual(vmware.steps[0], { kind: 'drivers', modules: ['mptspi', 'mptscsih', 'mptbase', 'vmxnet3'] });
    const proxmox = planAdapt('proxmox', parseProbe(sataDebian));
    assert.deepEqual(proxmox.devices, { disk: 'virtio-scsi', nic: 'virtio-net' });
    assert.deepEqual(proxmox.steps[0], { kind: 'drivers', modules: driversFor('proxmox').filter((m) => m !== 'sd_mod') });
    assert.ok(driversFor('proxmox').includes('virtio_scsi'));
  });

  it('changes nothing that is already right', () => {
    const ready = sataDebian
      .map((l) => l.replace(/ available$/, ' initramfs').replace('serial no', 'serial yes'))
      .filter((l) => !/fstab-device|kernel-root|netname/.test(l))
      .concat('probe packages qemu-guest-agent bash');
    assert.deepEqual(kinds('pocketvm', ready), []);
    assert.ok(planAdapt('pocketvm', parseProbe(ready)).changes.every((c) => !c.change));
  });

  it('chooses SATA and e1000 when the initramfs cannot be made again', () => {
    const noTool = sataDebian.map((l) =>
      l.replace('initramfs-tool update-initramfs', 'initramfs-tool none').replace('driver e1000 available', 'driver e1000 builtin'),
    );
    const plan = planAdapt('pocketvm', parseProbe(noTool));
    assert.deepEqual(plan.devices, { disk: 'sata', nic: 'e1000' });
    assert.ok(!plan.steps.some((s) => s.kind === 'drivers'));
    assert.equal(plan.changes[0]!.step, 'devices');
  });

  it('refuses before any change when no device the target offers would find the root', () => {
    const hopeless = sataDebian.map((l) =>
      l.replace('initramfs-tool update-initramfs', 'initramfs-tool none').replace('driver ahci initramfs', 'driver ahci missing'),
    );
    assert.throws(
      () => planAdapt('pocketvm', parseProbe(hopeless)),
      (e: unknown) => e instanceof AdaptError && e.exitCode === 52 && e.details.reason === 'no-drivers',
    );
    assert.throws(
      () => planAdapt('libvirt', parseProbe(['probe kernel none'])),
      (e: unknown) => e instanceof AdaptError && e.details.reason === 'not-linux',
    );
  });
  describe('a root on LVM (Debian installer\'s "use LVM": /boot of its own, root=/dev/mapper/VG-LV)', () => {
    /** The images corpus's bios-lvm: the payload's kernel in /boot without /lib/modules, virtio in its initramfs, no initramfs tool. */
    const lvmDebian = [
      'probe kernel 6.1.0-56-amd64',
      'probe initramfs-tool none',
      ...driversFor('pocketvm').map((m) => `probe driver ${m} initramfs`),
      'probe driver ahci missing',
      'probe driver e1000 missing',
      'probe grub /boot/grub/grub.cfg',
      'probe kernel-root /dev/mapper/corpusvg-root',
      'probe serial no',
      'probe netname ens3',
      'probe root-volume linear ',
    ];

    it('keeps root=/dev/mapper/… (stable, and what the initramfs activates the volume by): no UUID step', () => {
      const plan = planAdapt('pocketvm', parseProbe(lvmDebian));
      assert.deepEqual(parseProbe(lvmDebian).rootVolumeSegments, ['linear']);
      assert.deepEqual(
        plan.steps.map((s) => s.kind),
        ['serial', 'netnames'],
      );
      assert.equal(plan.changes.find((c) => c.step === 'uuid')!.change, false);
    });

    it('refuses for the stick a root volume that is not one linear segment (the stick maps it without device-mapper); libvirt takes it', () => {
      for (const segments of ['linear linear', 'raid1', 'thin'])
        assert.throws(
          () => planAdapt('pocketvm', parseProbe([...lvmDebian, `probe root-volume ${segments}`])),
          (e: unknown) => e instanceof AdaptError && e.exitCode === 52 && e.details.reason === 'lvm-layout',
          segments,
        );
      assert.deepEqual(kinds('libvirt', [...lvmDebian, 'probe root-volume linear linear']), ['serial', 'netnames']);
    });
  });
});
