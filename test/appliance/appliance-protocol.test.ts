// The appliance's reports as the launcher reads them, the source formats it
// tells apart by their headers, the names it gives, and the paths it builds.
import assert from 'node:assert/strict';
import { parseCheckLine, parseEntries, parseOpenReport } from '../../src/appliance/appliance-protocol.ts';
import { nameFor } from '../../src/appliance/appliance-daemon.ts';
import { formatOfHeader } from '../../src/appliance/source-image.ts';
import { guestPath } from '../../src/cli/commands/files.ts';

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
    assert.deepEqual(report.mounted, { number: 1, device: '/dev/sda1', type: 'ext4' });
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

  it("reads the checker's line", () => {
    assert.deepEqual(parseCheckLine('checked 1 /dev/sda1 xfs 0\n'), { number: 1, type: 'xfs', exitCode: 0 });
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
