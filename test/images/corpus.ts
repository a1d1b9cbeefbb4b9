// The image tests' corpus (issue 21): three small Debian systems made with the
// real tools, as the image guests' build makes its tree (root: mmdebstrap and
// the tree's ownership), so `image inspect` has real facts to find:
//
//   bios-mbr  an MBR with one ext4 root; GRUB's i386-pc modules and grub.cfg
//             under /boot/grub; a static address in /etc/network/interfaces
//   uefi-gpt  a GPT with an ESP (FAT32: EFI/BOOT/BOOTX64.EFI, grub's
//             monolithic EFI binary, and EFI/debian/grub.cfg), an ext4 root
//             and an xfs /srv; DHCP
//   bios-lvm  Debian's installer's "use entire disk and set up LVM": an MBR
//             with an ext4 /boot (the kernels, grub/ and GRUB's modules) and
//             an LVM physical volume (partition type 8e) holding the volume
//             group corpusvg with the ext4 root in its logical volume root;
//             fstab names the root /dev/mapper/corpusvg-root, as Debian
//             does, and /boot by UUID. The host has no device-mapper: the
//             PV is made on a loop device by pvcreate and vgcreate, the LV
//             added to the group's metadata by vgcfgrestore (lvcreate would
//             activate it), and the root file system written at the PV's
//             first extent, where the LV's single segment starts.
//
// All: `mmdebstrap --variant=minbase` with ifupdown and GRUB's module
// packages, a hostname, a machine-id, a user alice (1000), the payload's own
// kernel and initramfs as /boot/vmlinuz-VERSION and /boot/initrd.img-VERSION,
// an fstab naming each file system by the UUID the test gave it, and a small
// /sbin/init (minbase has no init package): it runs /etc/rc.local, where
// `image customize` puts its first-boot runner, and says so on the console,
// so a guest made from a corpus image (`guest create --from`) runs its
// first-boot commands. The disks hold no boot code (grub-install needs a
// block device): capture gives them GRUB; their grub.cfg waits a second at
// its menu, as Debian's does (without a timeout GRUB waits for ever), and its
// kernel line says console=ttyS0, so a captured image deployed to a disk
// shows its boot on the serial port. The mmdebstrap tarball and the raw disks are cached
// under .cache/images-corpus/ by a hash of everything that makes them.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, appendFileSync, truncateSync, closeSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitForPrefetch } from './fixture-prefetch.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CORPUS_CACHE = join(repo, '.cache', 'images-corpus');

/** Raised when what build() makes changes: the cached disks are rebuilt. */
const CORPUS_VERSION = 6;

const MMDEBSTRAP = ['--variant=minbase', '--include=ifupdown,grub-pc-bin,grub-efi-amd64-bin', 'bookworm'];

export interface CorpusSystem {
  label: 'bios-mbr' | 'uefi-gpt' | 'bios-lvm';
  raw: string;
  table: 'dos' | 'gpt';
  firmware: 'bios' | 'uefi';
  hostname: string;
  machineId: string;
  kernelVersion: string;
  /** dpkg's installed packages, counted in the tarball's status file. */
  packages: number;
  debianVersion: string;
  rootUuid: string;
  espUuid?: string;
  srvUuid?: string;
  /** bios-lvm: the separate /boot's UUID, and the volume group and logical volume holding the root (in partition 2). */
  bootUuid?: string;
  lvm?: { vg: string; lv: string; pvUuid: string; lvUuid: string; partition: number };
  network: { name: string; method: string; address?: string };
}

function sh(command: string, args: string[], input?: string): string {
  return execFileSync(command, args, {
    encoding: 'utf8',
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    ...(input === undefined ? {} : { input }),
  });
}

function sized(file: string, bytes: number): void {
  closeSync(openSync(file, 'w'));
  truncateSync(file, bytes);
}

/** The payload kernel's release, from its bzImage setup header (kernel_version at 0x20e, relative to 0x200). */
function kernelVersion(): string {
  const image = readFileSync(join(repo, 'payload', 'default', 'vmlinuz'));
  const at = image.readUInt16LE(0x20e) + 0x200;
  return image.subarray(at, image.indexOf(0, at)).toString('latin1').split(' ')[0]!;
}

/** The minbase tarball, made once (a few minutes) and reused. */
function debianTarball(log: (message: string) => void): string {
  const hash = createHash('sha256').update(JSON.stringify(MMDEBSTRAP)).digest('hex').slice(0, 16);
  const tar = join(CORPUS_CACHE, `minbase-${hash}.tar`);
  if (existsSync(tar)) return tar;
  mkdirSync(CORPUS_CACHE, { recursive: true });
  log(`mmdebstrap ${MMDEBSTRAP.join(' ')} (cached as ${tar})`);
  // --format=tar: mmdebstrap tells the format from the name's extension, and `.partial` has none it knows (a directory).
  execFileSync('mmdebstrap', ['--format=tar', ...MMDEBSTRAP, `${tar}.partial`], { stdio: ['ignore', 'ignore', 'inherit'] });
  renameSync(`${tar}.partial`, tar);
  return tar;
}

/** The corpus's init: /etc/rc.local (the first-boot runner of `image customize`), then wait for SIGTERM. */
export const CORPUS_INIT = `#!/bin/sh
# pocketvm's test corpus init (test/images/corpus.ts): minbase has no init.
mount -t tmpfs -o nosuid,nodev tmpfs /run 2>/dev/null
mount -t tmpfs -o nosuid,nodev tmpfs /tmp 2>/dev/null
echo "corpus-init: $(cat /etc/hostname) up"
[ -x /etc/rc.local ] && /etc/rc.local
echo "corpus-init: rc.local done"
trap 'exit 0' TERM
while :; do sleep 3600 & wait $!; done
`;

function commonTree(tree: string, tar: string, system: Pick<CorpusSystem, 'hostname' | 'machineId' | 'kernelVersion'>): void {
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(tree, { recursive: true });
  sh('tar', ['-xpf', tar, '-C', tree, '--numeric-owner']);
  writeFileSync(join(tree, 'etc/hostname'), `${system.hostname}\n`);
  writeFileSync(join(tree, 'etc/machine-id'), `${system.machineId}\n`);
  appendFileSync(join(tree, 'etc/passwd'), 'alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n');
  appendFileSync(join(tree, 'etc/group'), 'alice:x:1000:\n');
  appendFileSync(join(tree, 'etc/shadow'), 'alice:!:19000:0:99999:7:::\n');
  mkdirSync(join(tree, 'home/alice'), { recursive: true });
  sh('chown', ['1000:1000', join(tree, 'home/alice')]);
  writeFileSync(join(tree, 'sbin/init'), CORPUS_INIT, { mode: 0o755 });
  cpSync(join(repo, 'payload/default/vmlinuz'), join(tree, `boot/vmlinuz-${system.kernelVersion}`));
  cpSync(join(repo, 'payload/default/initrd.img'), join(tree, `boot/initrd.img-${system.kernelVersion}`));
  mkdirSync(join(tree, 'boot/grub'), { recursive: true });
  writeFileSync(
    join(tree, 'boot/grub/grub.cfg'),
    `set timeout=1\nmenuentry 'Debian' {\n  linux /boot/vmlinuz-${system.kernelVersion} root=UUID=@ROOT@ ro console=ttyS0,115200\n  initrd /boot/initrd.img-${system.kernelVersion}\n}\n`,
  );
}

function countPackages(tree: string): number {
  return readFileSync(join(tree, 'var/lib/dpkg/status'), 'utf8')
    .split('\n')
    .filter((l) => l === 'Status: install ok installed').length;
}

function ext4(tree: string, file: string, uuid: string, extraMiB: number): number {
  const used = Number(sh('du', ['-sxB1M', tree]).split('\t')[0]);
  const bytes = (used + extraMiB) << 20;
  sized(file, bytes);
  sh('mke2fs', ['-q', '-F', '-t', 'ext4', '-U', uuid, '-L', 'root', '-d', tree, file]);
  return bytes;
}

/** lvm on the host without udev, device-mapper, lvmpolld or /etc/lvm backups, seeing only `device`. */
function lvm(command: string, device: string, args: string[]): string {
  const config =
    'devices{obtain_device_list_from_udev=0 use_devicesfile=0} activation{udev_sync=0 udev_rules=0 monitoring=0} global{use_lvmpolld=0} backup{backup=0 archive=0}';
  return execFileSync('lvm', [command, '--config', config, '--devices', device, ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LVM_SUPPRESS_FD_WARNINGS: '1' },
  });
}

/**
 * A physical volume file holding `fs` as the only logical volume of a volume group: pvcreate and
 * vgcreate on a loop device, the LV added by vgcfgrestore (its one segment at extent 0, which
 * lvcreate cannot do without device-mapper), the file system written at the PV's first extent.
 */
function physicalVolume(file: string, fs: string, fsBytes: number, names: NonNullable<CorpusSystem['lvm']>, dir: string): number {
  const extent = 4 << 20;
  const extents = Math.ceil(fsBytes / extent);
  const bytes = (1 << 20) + (extents + 1) * extent;
  sized(file, bytes);
  const loop = sh('losetup', ['--find', '--show', file]).trim();
  try {
    lvm('pvcreate', loop, ['-ff', '-y', '-u', names.pvUuid, '--norestorefile', '--dataalignment', '1m', loop]);
    lvm('vgcreate', loop, ['-s', '4m', names.vg, loop]);
    const backup = join(dir, 'vg.txt');
    lvm('vgcfgbackup', loop, ['-f', backup, names.vg]);
    const text = readFileSync(backup, 'utf8');
    const end = text.trimEnd().lastIndexOf('}');
    const volume = `\tlogical_volumes {\n\t\t${names.lv} {\n\t\t\tid = "${names.lvUuid}"\n\t\t\tstatus = ["READ", "WRITE", "VISIBLE"]\n\t\t\tflags = []\n\t\t\tsegment_count = 1\n\t\t\tsegment1 {\n\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = ${extents}\n\t\t\t\ttype = "striped"\n\t\t\t\tstripe_count = 1\n\t\t\t\tstripes = ["pv0", 0]\n\t\t\t}\n\t\t}\n\t}\n`;
    writeFileSync(backup, text.slice(0, end) + volume + text.slice(end));
    // vgcfgrestore warns that it cannot check for active volumes (no device-mapper) and restores.
    lvm('vgcfgrestore', loop, ['-f', backup, names.vg]);
    rmSync(backup);
    const start = lvm('pvs', loop, ['--noheadings', '--units', 'b', '-o', 'pe_start', loop]).trim();
    const range = lvm('lvs', loop, ['--noheadings', '-o', 'seg_pe_ranges', `${names.vg}/${names.lv}`]).trim();
    if (start !== '1048576B' || range !== `${loop}:0-${extents - 1}`) throw new Error(`bios-lvm: unexpected PV layout ${start} ${range}`);
  } finally {
    sh('losetup', ['-d', loop]);
  }
  sh('dd', [`if=${fs}`, `of=${file}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none']);
  return bytes;
}

function buildLvm(dir: string, tar: string, system: CorpusSystem, log: (message: string) => void): CorpusSystem {
  const tree = join(dir, `${system.label}.tree`);
  const bootTree = join(dir, `${system.label}.boot`);
  const names = system.lvm!;
  commonTree(tree, tar, system);
  // /boot is a file system of its own: its files at its top, grub.cfg naming them from there.
  rmSync(bootTree, { recursive: true, force: true });
  renameSync(join(tree, 'boot'), bootTree);
  mkdirSync(join(tree, 'boot'));
  cpSync(join(tree, 'usr/lib/grub/i386-pc'), join(bootTree, 'grub/i386-pc'), { recursive: true });
  writeFileSync(
    join(bootTree, 'grub/grub.cfg'),
    `set timeout=1\nmenuentry 'Debian' {\n  search --no-floppy --fs-uuid --set=root ${system.bootUuid}\n  linux /vmlinuz-${system.kernelVersion} root=/dev/mapper/${names.vg}-${names.lv} ro console=ttyS0,115200\n  initrd /initrd.img-${system.kernelVersion}\n}\n`,
  );
  writeFileSync(
    join(tree, 'etc/fstab'),
    `# corpus (LVM)\n/dev/mapper/${names.vg}-${names.lv} / ext4 errors=remount-ro 0 1\nUUID=${system.bootUuid} /boot ext4 defaults 0 2\n`,
  );
  writeFileSync(join(tree, 'etc/network/interfaces'), 'auto lo\niface lo inet loopback\n\nallow-hotplug ens3\niface ens3 inet dhcp\n');
  system.packages = countPackages(tree);
  system.debianVersion = readFileSync(join(tree, 'etc/debian_version'), 'utf8').trim();
  const bootFs = join(dir, `${system.label}.boot.ext4`);
  const used = Number(sh('du', ['-sxB1M', bootTree]).split('\t')[0]);
  // Debian's installer makes /boot far larger than it holds (a few kernels' room): capture --smaller shrinks it.
  const bootBytes = (used + 160) << 20;
  sized(bootFs, bootBytes);
  sh('mke2fs', ['-q', '-F', '-t', 'ext4', '-U', system.bootUuid!, '-L', 'boot', '-d', bootTree, bootFs]);
  const rootFs = join(dir, `${system.label}.root.ext4`);
  const rootBytes = ext4(tree, rootFs, system.rootUuid, 64);
  const pv = join(dir, `${system.label}.pv`);
  const pvBytes = physicalVolume(pv, rootFs, rootBytes, names, dir);
  const pvStart = 2048 + bootBytes / 512;
  sized(system.raw, (pvStart + pvBytes / 512) * 512);
  sh('sfdisk', ['-q', system.raw], `label: dos\nlabel-id: 0x1f3d5b79\n2048,${bootBytes / 512},83,*\n${pvStart},${pvBytes / 512},8e\n`);
  sh('dd', [`if=${bootFs}`, `of=${system.raw}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none']);
  sh('dd', [`if=${pv}`, `of=${system.raw}`, 'bs=512', `seek=${pvStart}`, 'conv=notrunc,sparse', 'status=none', 'iflag=fullblock']);
  for (const file of [bootFs, rootFs, pv]) rmSync(file);
  for (const folder of [tree, bootTree]) rmSync(folder, { recursive: true, force: true });
  log(`built ${system.label}`);
  return system;
}

function build(dir: string, tar: string, label: CorpusSystem['label'], log: (message: string) => void): CorpusSystem {
  const version = kernelVersion();
  const tree = join(dir, `${label}.tree`);
  const raw = join(dir, `${label}.raw`);
  log(`building ${label}`);
  if (label === 'bios-lvm')
    return buildLvm(
      dir,
      tar,
      {
        label,
        raw,
        table: 'dos',
        firmware: 'bios',
        hostname: 'corpus-lvm',
        machineId: '00112233445566778899aabbccddeeff',
        kernelVersion: version,
        packages: 0,
        debianVersion: '',
        rootUuid: '9c8d7e6f-3333-4444-8555-b66677788899',
        bootUuid: 'ab12cd34-4444-4555-8666-c77788899900',
        lvm: { vg: 'corpusvg', lv: 'root', pvUuid: 'C0rpus-PV00-0000-0000-0000-0000-000001', lvUuid: 'C0rpus-LV00-0000-0000-0000-0000-000001', partition: 2 },
        network: { name: 'ens3', method: 'dhcp' },
      },
      log,
    );
  if (label === 'bios-mbr') {
    const system: CorpusSystem = {
      label,
      raw,
      table: 'dos',
      firmware: 'bios',
      hostname: 'corpus-bios',
      machineId: '0123456789abcdef0123456789abcdef',
      kernelVersion: version,
      packages: 0,
      debianVersion: '',
      rootUuid: '6f1e8c1a-5b2d-4a3e-9c7f-0a1b2c3d4e5f',
      network: { name: 'ens3', method: 'static', address: '10.0.2.15/24' },
    };
    commonTree(tree, tar, system);
    cpSync(join(tree, 'usr/lib/grub/i386-pc'), join(tree, 'boot/grub/i386-pc'), { recursive: true });
    writeFileSync(join(tree, 'boot/grub/grub.cfg'), readFileSync(join(tree, 'boot/grub/grub.cfg'), 'utf8').replace('@ROOT@', system.rootUuid));
    writeFileSync(join(tree, 'etc/fstab'), `# corpus\nUUID=${system.rootUuid} / ext4 errors=remount-ro 0 1\n`);
    writeFileSync(
      join(tree, 'etc/network/interfaces'),
      'auto lo\niface lo inet loopback\n\nauto ens3\niface ens3 inet static\n  address 10.0.2.15/24\n  gateway 10.0.2.2\n',
    );
    system.packages = countPackages(tree);
    system.debianVersion = readFileSync(join(tree, 'etc/debian_version'), 'utf8').trim();
    const fs = join(dir, `${label}.root.ext4`);
    const bytes = ext4(tree, fs, system.rootUuid, 96);
    sized(raw, bytes + (1 << 20));
    sh('sfdisk', ['-q', raw], `label: dos\nlabel-id: 0x5eedc0de\n2048,${bytes / 512},83,*\n`);
    sh('dd', [`if=${fs}`, `of=${raw}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none']);
    rmSync(fs);
    rmSync(tree, { recursive: true, force: true });
    return system;
  }
  const system: CorpusSystem = {
    label,
    raw,
    table: 'gpt',
    firmware: 'uefi',
    hostname: 'corpus-uefi',
    machineId: 'fedcba9876543210fedcba9876543210',
    kernelVersion: version,
    packages: 0,
    debianVersion: '',
    rootUuid: '7a2b3c4d-1111-4222-8333-944455566677',
    espUuid: '1234-ABCD',
    srvUuid: '8b9c0d1e-2222-4333-8444-a55566677788',
    network: { name: 'ens3', method: 'dhcp' },
  };
  commonTree(tree, tar, system);
  cpSync(join(tree, 'usr/lib/grub/x86_64-efi'), join(tree, 'boot/grub/x86_64-efi'), { recursive: true });
  writeFileSync(join(tree, 'boot/grub/grub.cfg'), readFileSync(join(tree, 'boot/grub/grub.cfg'), 'utf8').replace('@ROOT@', system.rootUuid));
  writeFileSync(
    join(tree, 'etc/fstab'),
    [
      `UUID=${system.rootUuid} / ext4 errors=remount-ro 0 1`,
      `UUID=${system.espUuid} /boot/efi vfat umask=0077 0 1`,
      `UUID=${system.srvUuid} /srv xfs defaults 0 2`,
      '',
    ].join('\n'),
  );
  writeFileSync(join(tree, 'etc/network/interfaces'), 'auto lo\niface lo inet loopback\n\nallow-hotplug ens3\niface ens3 inet dhcp\n');
  mkdirSync(join(tree, 'boot/efi'), { recursive: true });
  system.packages = countPackages(tree);
  system.debianVersion = readFileSync(join(tree, 'etc/debian_version'), 'utf8').trim();
  const efiBinary = join(tree, 'usr/lib/grub/x86_64-efi/monolithic/grubx64.efi');
  const rootFs = join(dir, `${label}.root.ext4`);
  const rootBytes = ext4(tree, rootFs, system.rootUuid, 96);
  // The ESP: FAT32, 64 MiB, the volume id the fstab names.
  const esp = join(dir, `${label}.esp`);
  const espBytes = 64 << 20;
  sh('mkfs.fat', ['-F', '32', '-n', 'ESP', '-i', system.espUuid!.replace('-', ''), '-C', esp, String(espBytes >> 10)]);
  const efiCfg = join(dir, 'grub.cfg');
  writeFileSync(efiCfg, `search --fs-uuid --set=root ${system.rootUuid}\nconfigfile /boot/grub/grub.cfg\n`);
  sh('mmd', ['-i', esp, '::/EFI', '::/EFI/BOOT', '::/EFI/debian']);
  sh('mcopy', ['-i', esp, efiBinary, '::/EFI/BOOT/BOOTX64.EFI']);
  sh('mcopy', ['-i', esp, efiCfg, '::/EFI/debian/grub.cfg']);
  // /srv on xfs (mkfs.xfs -p: a prototype file; at least 300 MiB).
  const srvFile = join(dir, 'index.html');
  writeFileSync(srvFile, '<p>corpus</p>\n');
  const proto = join(dir, 'srv.proto');
  writeFileSync(proto, `pocketvm\n0 0\nd--755 0 0\nwww d--755 0 0\nindex.html ---644 0 0 ${srvFile}\n$\n$\n`);
  const srv = join(dir, `${label}.srv.xfs`);
  const srvBytes = 300 << 20;
  sized(srv, srvBytes);
  sh('mkfs.xfs', ['-q', '-f', '-L', 'srv', '-m', `uuid=${system.srvUuid}`, '-p', proto, srv]);
  const espStart = 2048;
  const rootStart = espStart + espBytes / 512;
  const srvStart = rootStart + rootBytes / 512;
  sized(raw, (srvStart + srvBytes / 512 + 2048) * 512);
  sh(
    'sfdisk',
    ['-q', raw],
    [
      'label: gpt',
      'label-id: 3C4D5E6F-7A8B-4C9D-8E0F-112233445566',
      `start=${espStart}, size=${espBytes / 512}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI system"`,
      `start=${rootStart}, size=${rootBytes / 512}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"`,
      `start=${srvStart}, size=${srvBytes / 512}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="srv"`,
      '',
    ].join('\n'),
  );
  for (const [file, start] of [
    [esp, espStart],
    [rootFs, rootStart],
    [srv, srvStart],
  ] as const)
    sh('dd', [`if=${file}`, `of=${raw}`, 'bs=512', `seek=${start}`, 'conv=notrunc,sparse', 'status=none', 'iflag=fullblock']);
  for (const file of [esp, rootFs, srv, efiCfg, srvFile, proto]) rmSync(file);
  rmSync(tree, { recursive: true, force: true });
  return system;
}

/** The three systems' raw disks, from the cache when this file and the tarball are unchanged. */
export function buildImageCorpus(log: (message: string) => void = () => {}): CorpusSystem[] {
  waitForPrefetch('images-corpus', log);
  const tar = debianTarball(log);
  const key = createHash('sha256')
    .update(String(CORPUS_VERSION))
    .update(tar)
    .update(readFileSync(join(repo, 'payload/default/SHA256SUMS')))
    .digest('hex')
    .slice(0, 16);
  const dir = join(CORPUS_CACHE, `disks-${key}`);
  const facts = join(dir, 'corpus.json');
  if (existsSync(facts)) return JSON.parse(readFileSync(facts, 'utf8')) as CorpusSystem[];
  const building = `${dir}.partial-${process.pid}`;
  rmSync(building, { recursive: true, force: true });
  mkdirSync(building, { recursive: true });
  const systems = (['bios-mbr', 'uefi-gpt', 'bios-lvm'] as const).map((label) => build(building, tar, label, log));
  writeFileSync(join(building, 'corpus.json'), JSON.stringify(systems.map((s) => ({ ...s, raw: join(dir, `${s.label}.raw`) }))));
  // Another process (a test and a benchmark at once) may have finished first: its disks stay (one
  // in use must not change under it), this build goes.
  if (existsSync(facts)) rmSync(building, { recursive: true, force: true });
  else renameSync(building, dir);
  return JSON.parse(readFileSync(facts, 'utf8')) as CorpusSystem[];
}
