import assert from 'node:assert/strict';
import { describeDrive, findStickDrive, type ListedDrive, matchUsbIdentity, mountHolds, stickKind } from '../../src/hostprobe/stick-drive.ts';

const drive = (device: string, mounts: string[], extra: Partial<ListedDrive> = {}): ListedDrive => ({
  device,
  isReadOnly: false,
  isRemovable: false,
  isSystem: false,
  mountpoints: mounts.map((path) => ({ path })),
  ...extra,
});

describe('the stick as a drive', () => {
  it('a mount point holds itself and what is below it, nothing that merely shares a prefix', () => {
    assert.ok(mountHolds('/', '/home/a'));
    assert.ok(mountHolds('/media/a/STICK', '/media/a/STICK'));
    assert.ok(mountHolds('/media/a/STICK/', '/media/a/STICK/pocketvm'));
    assert.ok(!mountHolds('/media/a/STICK', '/media/a/STICK2/pocketvm'));
    assert.ok(mountHolds('E:\\', 'e:\\pocketvm', true));
    assert.ok(!mountHolds('E:\\', 'e:\\pocketvm', false));
    assert.ok(mountHolds('/Volumes/STICK', '/volumes/stick/x', true));
  });

  it('the longest mount point holding the root wins', () => {
    const drives = [
      drive('/dev/nvme0n1', ['/', '/home']),
      drive('/dev/sdb', ['/media/a/STICK'], { isRemovable: true, isUSB: true, busType: 'USB' }),
      drive('/dev/sdc', ['/media/a/STICK2']),
    ];
    assert.equal(findStickDrive('/media/a/STICK/pocketvm', drives, false)?.drive.device, '/dev/sdb');
    assert.equal(findStickDrive('/media/a/STICK2', drives, false)?.drive.device, '/dev/sdc');
    assert.deepEqual(findStickDrive('/home/a/stick', drives, false), { drive: drives[0], mountpoint: '/home' });
    assert.equal(findStickDrive('/x', [drive('/dev/sdb', [])], false), null);
  });

  it('removable (not virtual) or on USB is a real stick; the rest is a folder on a fixed disk', () => {
    assert.equal(stickKind(describeDrive(drive('/dev/sdb', [], { isRemovable: true, isVirtual: false }))), 'removable');
    assert.equal(stickKind(describeDrive(drive('/dev/sdb', [], { busType: 'USB' }))), 'removable');
    assert.equal(stickKind(describeDrive(drive('/dev/zram0', [], { isRemovable: true, isVirtual: true }))), 'fixed-disk-folder');
    assert.equal(stickKind(describeDrive(drive('/dev/vda', [], { busType: 'UNKNOWN' }))), 'fixed-disk-folder');
    assert.equal(describeDrive(drive('/dev/vda', [], { busType: 'UNKNOWN' })).bus, null);
    assert.equal(stickKind(null), 'unknown');
  });

  it('USB identity: by port path where the OS tells it, else only an unambiguous mass-storage device', () => {
    const stick = {
      vendorId: 0x0781,
      productId: 0x5581,
      bus: '2-1.4',
      serialNumber: 'ABC',
      manufacturerName: 'SanDisk',
      productName: 'Ultra',
      interfaceClasses: [8],
    };
    const other = { vendorId: 0x090c, productId: 0x1000, bus: '1-3', interfaceClasses: [8] };
    const hub = { vendorId: 0x1d6b, productId: 0x0003, bus: '2', ports: [], deviceClass: 9 };
    assert.deepEqual(matchUsbIdentity([hub, other, stick], '2-1.4'), {
      vendorId: '0781',
      productId: '5581',
      serial: 'ABC',
      manufacturer: 'SanDisk',
      product: 'Ultra',
      matchedBy: 'port-path',
    });
    assert.equal(matchUsbIdentity([hub, other], '2-1.4'), null);
    assert.equal(matchUsbIdentity([{ ...stick, bus: '2', ports: [1, 4] }], '2-1.4')?.productId, '5581', 'bus number + ports');
    assert.equal(matchUsbIdentity([hub, stick], null)?.matchedBy, 'only-mass-storage-device');
    assert.equal(matchUsbIdentity([hub, stick, other], null), null, 'two sticks: cannot tell');
  });
});
