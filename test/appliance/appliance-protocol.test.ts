// The appliance's reports as the launcher reads them, the source formats it
// tells apart by their headers, the names it gives, and the paths it builds.
import assert from 'node:assert/strict';
import { parseCheckLine, parseEntries, parseOpenReport } from '../../src/appliance/appliance-protocol.ts';
import { nameFor } from '../../src/appliance/appliance-daemon.ts';
import { formatOfHeader } from '../../src/appliance/source-image.ts';
import { guestPath, layerDepth } from '../../src/cli/commands/files.ts';

describe('appliance protocol', () => {
  it('reads what pocketvm-files open found and mounted', () => {
    const report = parseOpenReport(
      ['disk /dev/sda 69206016 gpt', 'part 1 /dev/sda1 67108864 ext4 corpus-ext4', 'part 2 /dev/sda2 1048576 - -', 'mounted 1 /dev/sda1 ext4 ro', ''].join(
        '\n',
      ),
    );
    assert.deepEqual(report.disk, { device: '/dev/sda', bytes: 69206016, partitionTable: 'gpt' });
    assert.deepEqual(report.partitions, [
      { number: 1, device: '/dev/sda1', bytes: 67108864, type: 'ext4', label: 'corpus-ext4' },
      { number: 2, device: '/dev/sda2', bytes: 1048576, type: null, label: null },
    ]);
    assert.deepEqual(report.mounted, { number: 1, device: '/dev/sda1', type: 'ext4', volume: '1' });
    assert.deepEqual(report.volumes, []);
  });

  it('reads the layers inside the partitions (LUKS, md, LVM), a locked LUKS and the volume mounted', () => {
    const report = parseOpenReport(
      [
        'disk /dev/sda 503316480 gpt',
        'part 1 /dev/sda1 25165824 ext4 carrier',
        'part 2 /dev/sda2 41943040 linux_raid_member pocketvm:corpus',
        'part 3 /dev/sda3 41943040 crypto_LUKS -',
        'locked 3',
        'part 4 /dev/sda4 377487360 LVM2_member -',
        'vol 2/md /dev/mapper/pvm-stack-1 41877504 ext4 stack-md',
        'vol 4/vg0/data /dev/mapper/vg0-data 318767104 xfs stack-xfs',
        'vol 4/vg0/secret /dev/mapper/vg0-secret 54525952 crypto_LUKS -',
        'vol 4/vg0/secret/luks /dev/mapper/pvm-stack-2 52428800 ext4 -',
        'mounted 4 /dev/mapper/pvm-stack-2 ext4 ro 4/vg0/secret/luks',
      ].join('\n'),
    );
    assert.deepEqual(
      report.volumes.map((v) => [v.id, v.type, v.locked]),
      [
        ['3', 'crypto LUKS', true],
        ['2/md', 'ext4', false],
        ['4/vg0/data', 'xfs', false],
        ['4/vg0/secret', 'crypto LUKS', false],
        ['4/vg0/secret/luks', 'ext4', false],
      ],
    );
    assert.deepEqual(report.mounted, { number: 4, device: '/dev/mapper/pvm-stack-2', type: 'ext4', volume: '4/vg0/secret/luks' });
    assert.equal(layerDepth('4/vg0/secret/luks'), 2);
    assert.equal(layerDepth('2/md'), 1);
    assert.equal(layerDepth('0/luks/vg/lv'), 2);
  });

  it('refuses a report that never says what it mounted', () => {
    assert.throws(() => parseOpenReport('disk /dev/sda 1024 -\n'), /incomplete/);
  });

  it('reads entries with spaces and non-ASCII in their names, symlink targets and hard-link counts', () => {
    const entries = parseEntries(
      ['81a4 12 1700000000 2 ./a name ü.txt', 'a1ff 17 1700000000 1 ./link', 'link ../etc/os-release', '41ed 4096 1700000000 3 ./dir', ''].join('\n'),
    );
    assert.deepEqual(entries[0], { name: 'a name ü.txt', kind: 'file', mode: 0o644, size: 12, mtime: 1700000000, links: 2 });
    assert.equal(entries[1]!.kind, 'symlink');
    assert.equal(entries[1]!.target, '../etc/os-release');
    assert.equal(entries[2]!.kind, 'directory');
  });

  it("reads stat's xattr lines into the entry, values as base64 (empty ones too)", () => {
    const [entry] = parseEntries(
      ['81a4 6 1700000000 1 /mnt/files/d/a.txt', 'xattr user.comment 4772c3bcc39f65', 'xattr user.bin 00ff10', 'xattr user.empty ', ''].join('\n'),
    );
    assert.deepEqual(entry!.xattrs, {
      'user.comment': Buffer.from('Grüße').toString('base64'),
      'user.bin': Buffer.from([0, 0xff, 0x10]).toString('base64'),
      'user.empty': '',
    });
    assert.equal(parseEntries('81a4 6 1700000000 1 ./b\n')[0]!.xattrs, undefined);
  });

  it("reads the checker's line", () => {
    assert.deepEqual(parseCheckLine('checked 1 /dev/sda1 xfs 0\n'), { number: 1, type: 'xfs', exitCode: 0, volume: '1' });
    assert.deepEqual(parseCheckLine('checked 4 /dev/mapper/vg-lv xfs 0 4/vg/lv\n'), { number: 4, type: 'xfs', exitCode: 0, volume: '4/vg/lv' });
    assert.equal(parseCheckLine('disk /dev/sda 1 -\n'), undefined);
  });
});

describe('source images', () => {
  it('tells the formats apart by their headers, whatever the name', () => {
    const head = (bytes: Buffer) => Buffer.concat([bytes, Buffer.alloc(512 - bytes.length)]);
    assert.equal(formatOfHeader(head(Buffer.from([0x51, 0x46, 0x49, 0xfb]))), 'qcow2');
    assert.equal(formatOfHeader(head(Buffer.from('KDMV'))), 'vmdk');
    assert.equal(formatOfHeader(head(Buffer.from('# Disk DescriptorFile\n'))), 'vmdk');
    assert.equal(formatOfHeader(head(Buffer.from('vhdxfile'))), 'vhdx');
    const vdi = head(Buffer.alloc(0));
    vdi.writeUInt32LE(0xbeda107f, 0x40);
    assert.equal(formatOfHeader(vdi), 'vdi');
    assert.equal(formatOfHeader(head(Buffer.from([0xeb, 0x3c, 0x90]))), 'raw');
  });

  it('names a source after its file, unique among the open ones', () => {
    assert.equal(nameFor('/x/My Disk.qcow2', new Set()), 'my-disk');
    assert.equal(nameFor('/x/my-disk.img', new Set(['my-disk'])), 'my-disk-2');
    assert.equal(nameFor('/dev/sdb', new Set()), 'sdb');
    assert.equal(nameFor('/x/2024.img', new Set()), 'd-2024');
    assert.equal(nameFor('/x/....img', new Set()), 'disk');
  });

  it('keeps a path inside its source, however many .. it holds', () => {
    assert.equal(guestPath('disk', '/etc/os-release'), '/mnt/files/disk/etc/os-release');
    assert.equal(guestPath('disk', '../../../etc/shadow'), '/mnt/files/disk/etc/shadow');
    assert.equal(guestPath('disk', ''), '/mnt/files/disk/');
  });
});
