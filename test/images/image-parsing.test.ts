// The image store's parsing rules on bytes and text: formats told from
// headers, partition tables (made by sfdisk on a sparse file), an OVA's tar
// and OVF, and the appliance's inspect report turned into facts.
// Test tier: integration (qemu-img makes the OVA's disk)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { formatOfBytes, looksLikeRawDisk } from '../../src/images/disk-format.ts';
import { ovfDiskFiles, readOva } from '../../src/images/ova.ts';
import { PartitionTableError, readPartitionTable } from '../../src/images/partition-table.ts';
import { architectureOf, factsFromReport, parseFstab, parseInterfaces, parsePasswd } from '../../src/images/inspect-report.ts';
import { imageNameFor } from '../../src/images/image-store.ts';

const b64 = (text: string) => Buffer.from(text).toString('base64');

async function tableOf(file: string) {
  const handle = await open(file, 'r');
  const size = (await handle.stat()).size;
  try {
    return await readPartitionTable(async (offset, length) => {
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, offset);
      return buffer;
    }, size);
  } finally {
    await handle.close();
  }
}

describe('image store parsing', () => {
  let dir: string;
  before(() => (dir = tempDir('pocketvm-image-parse-')));
  after(() => removeDir(dir));

  it('tells formats from their headers, a fixed VHD from its footer, an OVA from its tar header', () => {
    const head = (bytes: number[] | string, at = 0) => {
      const b = Buffer.alloc(1024);
      (typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes)).copy(b, at);
      return b;
    };
    const none = Buffer.alloc(512);
    assert.equal(formatOfBytes(head([0x51, 0x46, 0x49, 0xfb]), none), 'qcow2');
    assert.equal(formatOfBytes(head('KDMV'), none), 'vmdk');
    assert.equal(formatOfBytes(head('# Disk DescriptorFile'), none), 'vmdk');
    assert.equal(formatOfBytes(head('vhdxfile'), none), 'vhdx');
    assert.equal(formatOfBytes(head([0x7f, 0x10, 0xda, 0xbe], 0x40), none), 'vdi');
    assert.equal(formatOfBytes(head('conectix'), none), 'vpc');
    assert.equal(formatOfBytes(Buffer.alloc(1024), head('conectix').subarray(0, 512)), 'vpc');
    assert.equal(formatOfBytes(head('ustar', 257), none), 'ova');
    assert.equal(formatOfBytes(Buffer.alloc(1024), none), undefined);
    assert.equal(looksLikeRawDisk(Buffer.from('just some text, no disk at all'.repeat(40))), false);
    const mbr = Buffer.alloc(1024);
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    assert.equal(looksLikeRawDisk(mbr), true);
  });

  it('reads GPT and MBR tables and refuses a GPT whose CRC is wrong', async () => {
    const gpt = join(dir, 'gpt.raw');
    closeSync(openSync(gpt, 'w'));
    truncateSync(gpt, 64 << 20);
    execFileSync('sfdisk', ['-q', gpt], {
      input: 'label: gpt\nlabel-id: 3C4D5E6F-7A8B-4C9D-8E0F-112233445566\n,16M,U\nsize=+, type=L, name=root\n',
    });
    const table = await tableOf(gpt);
    assert.equal(table.kind, 'gpt');
    assert.equal(table.id, '3c4d5e6f-7a8b-4c9d-8e0f-112233445566');
    assert.deepEqual(
      table.partitions.map((p) => [p.number, p.start, p.type]),
      [
        [1, 1 << 20, 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b'],
        [2, 17 << 20, '0fc63daf-8483-4772-8e79-3d69d8477de4'],
      ],
    );
    assert.equal(table.partitions[1]!.name, 'root');
    const fd = openSync(gpt, 'r+');
    writeSync(fd, Buffer.from('x'), 0, 1, 1024 + 60);
    closeSync(fd);
    await assert.rejects(tableOf(gpt), PartitionTableError);

    const dos = join(dir, 'dos.raw');
    closeSync(openSync(dos, 'w'));
    truncateSync(dos, 32 << 20);
    execFileSync('sfdisk', ['-q', dos], { input: 'label: dos\nlabel-id: 0x5eedc0de\n2048,8192,83,*\n,,ef\n' });
    const mbr = await tableOf(dos);
    assert.equal(mbr.kind, 'dos');
    assert.equal(mbr.id, '5eedc0de');
    assert.deepEqual(
      mbr.partitions.map((p) => [p.number, p.type, p.bootable]),
      [
        [1, '83', true],
        [2, 'ef', false],
      ],
    );
    // A partition past the end of the disk: the disk was cut short.
    truncateSync(dos, 3 << 20);
    await assert.rejects(tableOf(dos), /past the end/);
  });

  it("finds an OVA's OVF and its disks in place, without unpacking", async () => {
    const disk = join(dir, 'disk1.vmdk');
    execFileSync('qemu-img', ['create', '-q', '-f', 'vmdk', disk, '8M']);
    const ovf = `<Envelope xmlns:ovf="x"><References><File ovf:id="f1" ovf:href="disk1.vmdk"/></References>
<DiskSection><Disk ovf:diskId="d1" ovf:fileRef="f1"/></DiskSection><VirtualSystem ovf:id="vm1"/></Envelope>`;
    writeFileSync(join(dir, 'vm.ovf'), ovf);
    assert.deepEqual(ovfDiskFiles(ovf), ['disk1.vmdk']);
    const ova = join(dir, 'vm.ova');
    execFileSync('tar', ['--format=ustar', '-cf', ova, '-C', dir, 'vm.ovf', 'disk1.vmdk']);
    const contents = await readOva(ova);
    assert.equal(contents.ovf, 'vm.ovf');
    assert.equal(contents.system, 'vm1');
    assert.equal(contents.disks.length, 1);
    assert.equal(contents.disks[0]!.format, 'vmdk');
    const spec = JSON.parse(contents.disks[0]!.spec.slice(5)) as { file: { offset: number; size: number } };
    const bytes = readFileSync(ova).subarray(spec.file.offset, spec.file.offset + spec.file.size);
    assert.ok(bytes.equals(readFileSync(disk)), 'the offset and size are the member');
    // An OVF naming a disk that is not in the archive.
    writeFileSync(join(dir, 'vm.ovf'), ovf.replace('disk1.vmdk', 'disk2.vmdk'));
    execFileSync('tar', ['--format=ustar', '-cf', ova, '-C', dir, 'vm.ovf', 'disk1.vmdk']);
    await assert.rejects(readOva(ova), /not in the archive/);
  });

  it('names images from their files', () => {
    assert.equal(
      imageNameFor('/x/My Laptop (old).VMDK', () => false),
      'my-laptop-old',
    );
    assert.equal(
      imageNameFor('/x/2024.img', (n) => n === 'i-2024'),
      'i-2024-2',
    );
  });

  it('parses fstab, passwd, interfaces and ELF headers', () => {
    assert.deepEqual(parseFstab('# c\nUUID=a / ext4 defaults 0 1\n\n/dev/sdb1\t/srv xfs\n'), [
      { spec: 'UUID=a', mountpoint: '/', type: 'ext4', options: 'defaults' },
      { spec: '/dev/sdb1', mountpoint: '/srv', type: 'xfs', options: 'defaults' },
    ]);
    assert.deepEqual(
      parsePasswd(
        'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/usr/sbin/nologin\nbob:x:1001:1001::/home/bob:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n',
      ).map((u) => u.name),
      ['root', 'bob'],
    );
    assert.deepEqual(parseInterfaces('auto eth0\niface eth0 inet static\n  address 192.0.2.5/24\n  gateway 192.0.2.1 # gw\niface eth1 inet dhcp\n'), [
      { name: 'eth0', method: 'static', address: '192.0.2.5/24', gateway: '192.0.2.1' },
      { name: 'eth1', method: 'dhcp' },
    ]);
    assert.equal(architectureOf('7f454c4602010100000000000000000003003e00'), 'x86_64');
    assert.equal(architectureOf('7f454c460201010000000000000000000300b700'), 'aarch64');
    assert.equal(architectureOf('4d5a'), null);
  });

  it('turns an inspect report into facts: root, ESP, fstab mount points, kernels, firmware', () => {
    const report = [
      'disk /dev/sda 1073741824',
      `blkid 0 /dev/sda 1073741824 ${b64('PTUUID=abc\nPTTYPE=gpt\n')}`,
      `blkid 1 /dev/sda1 67108864 ${b64('UUID=1234-ABCD\nTYPE=vfat\nPART_ENTRY_TYPE=c12a7328-f81f-11d2-ba4b-00a0c93ec93b\nPART_ENTRY_UUID=p1\n')}`,
      `blkid 2 /dev/sda2 900000000 ${b64('UUID=r00t\nTYPE=ext4\nLABEL=my\\ root\n')}`,
      'mounted 1 vfat',
      'path 1 EFI/BOOT/BOOTX64.EFI',
      'mounted 2 ext4',
      `file 2 etc/os-release ${b64('ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')}`,
      `file 2 etc/hostname ${b64('box\n')}`,
      `file 2 etc/machine-id ${b64('0123\n')}`,
      `file 2 etc/fstab ${b64('UUID=r00t / ext4 defaults 0 1\nUUID=1234-ABCD /boot/efi vfat umask=0077 0 1\n')}`,
      'path 2 boot/vmlinuz-6.1.0-1-amd64',
      'path 2 boot/initrd.img-6.1.0-1-amd64',
      'path 2 boot/grub/grub.cfg',
      'elf 2 bin/sh 7f454c4602010100000000000000000003003e00',
      'count 2 dpkg 93',
      'done',
    ].join('\n');
    const facts = factsFromReport(report);
    assert.equal(facts.rootPartition, 2);
    assert.deepEqual(facts.os, { family: 'linux', distribution: 'debian', version: '12', codename: 'bookworm', name: 'Debian GNU/Linux 12 (bookworm)' });
    assert.equal(facts.architecture, 'x86_64');
    assert.equal(facts.firmware, 'uefi');
    assert.equal(facts.bootloader, 'grub');
    assert.equal(facts.hostname, 'box');
    assert.equal(facts.machineId, '0123');
    assert.deepEqual(facts.packages, { manager: 'dpkg', count: 93 });
    assert.deepEqual(facts.kernels, [{ version: '6.1.0-1-amd64', file: '/boot/vmlinuz-6.1.0-1-amd64', initramfs: '/boot/initrd.img-6.1.0-1-amd64' }]);
    assert.deepEqual(
      facts.fileSystems.map((f) => [f.partition, f.type, f.mountpoint, f.esp, f.label]),
      [
        [1, 'vfat', '/boot/efi', true, null],
        [2, 'ext4', '/', false, 'my root'],
      ],
    );
    assert.deepEqual(facts.efiFiles, ['/EFI/BOOT/BOOTX64.EFI']);
    assert.equal(facts.windows, null);
    // A disk with an NTFS holding Windows but no hive lines: found, each hive named as missing.
    const windows = factsFromReport(
      [`blkid 0 /dev/sdb 1000 ${b64('TYPE=ntfs\nUUID=W1\n')}`, 'mounted 0 ntfs', 'path 0 Windows/System32/config/SOFTWARE'].join('\n'),
    );
    assert.equal(windows.os.family, 'windows');
    assert.deepEqual(windows.windows?.hives, { software: { status: 'missing' }, system: { status: 'missing' } });
    assert.equal(windows.windows?.productName, null);
  });

  it('finds a root on LVM (a logical volume in a partition, fstab by /dev/mapper name) and its kernels on a separate /boot', () => {
    const reportWith = (root: string) =>
      [
        'disk /dev/sda 1073741824',
        `blkid 0 /dev/sda 1073741824 ${b64('PTUUID=1f3d5b79\nPTTYPE=dos\n')}`,
        `blkid 1 /dev/sda1 200000000 ${b64('UUID=b00t\nTYPE=ext4\nLABEL=boot\nPART_ENTRY_TYPE=0x83\n')}`,
        'mounted 1 ext4',
        'path 1 vmlinuz-6.1.0-1-amd64',
        'path 1 initrd.img-6.1.0-1-amd64',
        'path 1 grub/grub.cfg',
        'path 1 grub/i386-pc',
        `blkid 2 /dev/sda2 800000000 ${b64('UUID=pv-uuid\nTYPE=LVM2_member\nPART_ENTRY_TYPE=0x8e\n')}`,
        'volume 101 2 my-vg root',
        `blkid 101 /dev/mapper/my--vg-root 700000000 ${b64('UUID=r00t\nTYPE=ext4\nLABEL=root\n')}`,
        'volume 102 2 my-vg srv',
        `blkid 102 /dev/mapper/my--vg-srv 100000000 ${b64('UUID=s3rv\nTYPE=xfs\n')}`,
        'mounted 101 ext4',
        `file 101 etc/os-release ${b64('ID=debian\nVERSION_ID="12"\n')}`,
        `file 101 etc/fstab ${b64(`${root} / ext4 errors=remount-ro 0 1\nUUID=b00t /boot ext4 defaults 0 2\n/dev/my-vg/srv /srv xfs defaults 0 2\n`)}`,
        'done',
      ].join('\n');
    const facts = factsFromReport(reportWith('/dev/mapper/my--vg-root'));
    assert.equal(facts.rootPartition, 2, "the root's physical volume's partition");
    assert.deepEqual(
      facts.fileSystems.map((f) => [f.partition, f.volume, f.type, f.uuid, f.mountpoint]),
      [
        [1, null, 'ext4', 'b00t', '/boot'],
        [2, null, 'LVM2_member', 'pv-uuid', null],
        [2, 'my-vg/root', 'ext4', 'r00t', '/'],
        [2, 'my-vg/srv', 'xfs', 's3rv', '/srv'],
      ],
    );
    assert.deepEqual(facts.kernels, [{ version: '6.1.0-1-amd64', file: '/boot/vmlinuz-6.1.0-1-amd64', initramfs: '/boot/initrd.img-6.1.0-1-amd64' }]);
    assert.equal(facts.bootloader, 'grub');
    assert.equal(facts.firmware, 'bios');
    assert.deepEqual(facts.efiFiles, []);
    // A /dev/VG/LV name (the /srv line) names the volume as its /dev/mapper name does.
    assert.equal(factsFromReport(reportWith('/dev/my-vg/root')).fileSystems.find((f) => f.volume === 'my-vg/root')!.mountpoint, '/');
  });
});
