// The image's own /boot and /boot/efi that `image adapt` mounts under its root
// (src/images/guest-mounts.ts, docs/adapt.md "How it works"), found from its
// fstab as inspect reports it: by UUID, by a /dev/disk/by-* link, by a kernel
// device name, as an LVM volume; refused when the fstab names one the image
// does not hold. The mounts in the appliance: test/integration/image-adapt.test.ts.
import assert from 'node:assert/strict';
import { AdaptError } from '../../src/errors.ts';
import { bootMounts } from '../../src/images/guest-mounts.ts';
import { factsFromReport } from '../../src/images/inspect-report.ts';

const b64 = (text: string) => Buffer.from(text).toString('base64');

/** Debian's installer's LVM layout: /boot on partition 1, the PV on partition 2 with vg/root (and vg/boot2, another LV), ESP on 3; fstab as given. */
function facts(fstab: string) {
  return factsFromReport(
    [
      'disk /dev/sda 1073741824',
      `blkid 0 /dev/sda 1073741824 ${b64('PTUUID=1f3d5b79\nPTTYPE=dos\n')}`,
      `blkid 1 /dev/sda1 200000000 ${b64('UUID=b00t\nTYPE=ext4\nLABEL=boot\nPART_ENTRY_UUID=1f3d5b79-01\nPART_ENTRY_TYPE=0x83\n')}`,
      'mounted 1 ext4',
      'path 1 grub/grub.cfg',
      `blkid 2 /dev/sda2 800000000 ${b64('UUID=pv-uuid\nTYPE=LVM2_member\nPART_ENTRY_TYPE=0x8e\n')}`,
      'volume 101 2 vg root',
      `blkid 101 /dev/mapper/vg-root 700000000 ${b64('UUID=r00t\nTYPE=ext4\n')}`,
      'volume 102 2 vg boot2',
      `blkid 102 /dev/mapper/vg-boot2 50000000 ${b64('UUID=b00t2\nTYPE=ext4\n')}`,
      'volume 103 2 other srv',
      `blkid 103 /dev/mapper/other-srv 50000000 ${b64('UUID=s3rv\nTYPE=ext4\n')}`,
      `blkid 3 /dev/sda3 60000000 ${b64('UUID=12AB-34CD\nTYPE=vfat\nPART_ENTRY_TYPE=0xef\n')}`,
      'mounted 101 ext4',
      `file 101 etc/os-release ${b64('ID=debian\n')}`,
      `file 101 etc/fstab ${b64(`/dev/mapper/vg-root / ext4 errors=remount-ro 0 1\n${fstab}`)}`,
      'done',
    ].join('\n'),
  );
}

const onLvm = { volume: 'vg/root' };
const refusal = (mountpoint: string) => (e: unknown) =>
  e instanceof AdaptError && e.exitCode === 52 && e.details.reason === 'no-boot' && e.details.mountpoint === mountpoint;

describe('image adapt: the image’s own /boot from its fstab', () => {
  it('finds /boot by UUID, LABEL, PARTUUID, a /dev/disk/by-* link or a kernel name, as a partition', () => {
    for (const spec of [
      'UUID=b00t',
      'UUID=B00T',
      'LABEL=boot',
      'PARTUUID=1f3d5b79-01',
      '/dev/disk/by-uuid/b00t',
      '/dev/disk/by-label/boot',
      '/dev/sda1',
      '/dev/vda1',
    ])
      assert.deepEqual(bootMounts(facts(`${spec} /boot ext4 defaults 0 2\n`), onLvm), [{ mountpoint: '/boot', partition: 1, volume: null }], spec);
  });

  it('mounts /boot before /boot/efi whatever the fstab order, and nothing the steps do not need', () => {
    const found = bootMounts(
      facts('UUID=12AB-34CD /boot/efi vfat umask=0077 0 1\n/dev/mapper/other-srv /srv ext4 defaults 0 2\nUUID=b00t /boot/ ext4 defaults 0 2\n'),
      onLvm,
    );
    assert.deepEqual(found, [
      { mountpoint: '/boot', partition: 1, volume: null },
      { mountpoint: '/boot/efi', partition: 3, volume: null },
    ]);
  });

  it('takes a /boot on a volume of the root’s group, and none when the fstab has no /boot', () => {
    assert.deepEqual(bootMounts(facts('/dev/vg/boot2 /boot ext4 defaults 0 2\n'), onLvm), [{ mountpoint: '/boot', partition: 2, volume: 'vg/boot2' }]);
    assert.deepEqual(bootMounts(facts(''), onLvm), []);
  });

  it('refuses a /boot the image does not hold, or one on another volume group (which is not activated)', () => {
    assert.throws(() => bootMounts(facts('UUID=gone /boot ext4 defaults 0 2\n'), onLvm), refusal('/boot'));
    assert.throws(() => bootMounts(facts('/dev/sdb1 /boot ext4 defaults 0 2\n'), onLvm), refusal('/boot'));
    assert.throws(() => bootMounts(facts('/dev/mapper/other-srv /boot ext4 defaults 0 2\n'), onLvm), refusal('/boot'));
    assert.throws(() => bootMounts(facts('UUID=b00t /boot ext4 defaults 0 2\nLABEL=NOESP /boot/efi vfat defaults 0 1\n'), onLvm), refusal('/boot/efi'));
  });
});
