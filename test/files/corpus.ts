// The corpus `launcher files` is tested on, made with each file system's own
// tools on image files, as an ordinary user (no mount, no loop device, no
// root): mke2fs -d, mkfs.xfs -p, mkfs.btrfs --rootdir, mkfs.fat + mcopy,
// mkfs.exfat, mkfs.ntfs, mkfs.f2fs; sgdisk and sfdisk for the partition
// tables; qemu-img convert for qcow2 and vmdk; cryptsetup reencrypt
// --encrypt turns an ext4 image into LUKS2 in place, as an ordinary user (no
// device-mapper). LVM and md RAID need block devices (root, device-mapper):
// stackScript makes them inside the helper appliance instead. Every file is
// known by its hash, and some by their extended attributes. HFS+ is missing: no tool in Debian bookworm makes one
// (no hfsprogs; mkfs.hfsplus is in no other package).
import { createHash, randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, symlinkSync, truncateSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';

/** A file of the corpus, by its path inside the file system. */
export interface CorpusFile {
  path: string;
  sha256: string;
  bytes: number;
}

export interface CorpusImage {
  /** What the test calls it (ext4-gpt-raw, …). */
  label: string;
  file: string;
  /** blkid's TYPE of the file system the image holds. */
  type: string;
  partitionTable: 'gpt' | 'dos' | null;
  files: CorpusFile[];
  symlinks: Array<{ path: string; target: string }>;
  hardLinks: string[][];
  /** Extended attributes the file system was made with (user.*), by path: what files stat must report. */
  xattrs: CorpusXattr[];
  /** The LUKS passphrase, for an image that needs one. */
  passphrase?: string;
  /** What files open reports as mounted.volume (default: the partition's number). */
  volume?: string;
}

export interface CorpusXattr {
  path: string;
  name: string;
  value: Buffer;
}

/**
 * The xattrs the rich tree's files carry (set with setfattr on the host's
 * copy; mke2fs -d and mkfs.btrfs --rootdir copy them into the file system): a
 * UTF-8 text, a binary value with a zero byte, and one on the hard-linked file
 * (both names show it).
 */
const XATTRS = [
  { path: 'etc/os-release', name: 'user.pocketvm.comment', value: Buffer.from('Grüße aus dem Korpus') },
  { path: 'data/random.bin', name: 'user.pocketvm.binary', value: Buffer.from([0x00, 0xff, 0x10, 0x0a, 0x00]) },
  { path: 'data/random.bin', name: 'user.pocketvm.mime_type', value: Buffer.from('application/octet-stream') },
];

/** The passphrase of the corpus's LUKS volumes (a space and a non-ASCII letter: passed as bytes, never split). */
export const LUKS_PASSPHRASE = 'corpus pass phrase ü';

export const LONG_NAME = `${'long-name-'.repeat(20)}end.txt`;
export const UNICODE_NAME = 'Grüße—日本語✓.txt';
const SPARSE_BYTES = 8 << 20;

/** A new sparse file of that size. */
function sized(file: string, bytes: number): void {
  writeFileSync(file, '');
  truncateSync(file, bytes);
}

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function run(command: string, args: string[], options: { input?: string; cwd?: string } = {}): Promise<void> {
  const result = await execa(command, args, { reject: false, env: { LANG: 'C.UTF-8' }, ...options });
  if (result.exitCode !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${String(result.stderr)}`);
}

/** The file tree every image starts from; `rich` adds what only Unix file systems hold. */
async function makeTree(dir: string, rich: boolean): Promise<Omit<CorpusImage, 'label' | 'file' | 'type' | 'partitionTable'>> {
  const files: CorpusFile[] = [];
  const add = (path: string, data: Buffer) => {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), data);
    files.push({ path, sha256: sha(data), bytes: data.length });
  };
  add('etc/os-release', Buffer.from('PRETTY_NAME="pocketvm files corpus"\nID=corpus\n'));
  add('data/random.bin', randomBytes(3 << 20));
  add(`data/${rich ? LONG_NAME : 'long-name-for-fat-end.txt'}`, Buffer.from('a long name\n'));
  add(`data/${UNICODE_NAME}`, Buffer.from('non-ASCII name\n'));
  const symlinks: CorpusImage['symlinks'] = [];
  const hardLinks: string[][] = [];
  const xattrs: CorpusXattr[] = [];
  if (rich) {
    // Sparse: 8 MiB with one block of data at the end.
    const sparse = join(dir, 'data/sparse.bin');
    writeFileSync(sparse, '');
    truncateSync(sparse, SPARSE_BYTES - 4);
    appendFileSync(sparse, 'end\n');
    files.push({ path: 'data/sparse.bin', sha256: sha(readFileSync(sparse)), bytes: SPARSE_BYTES });
    symlinkSync('../etc/os-release', join(dir, 'data/link-to-os-release'));
    symlinks.push({ path: 'data/link-to-os-release', target: '../etc/os-release' });
    // Needs a host file system with user xattrs (ext4, xfs, btrfs; tmpfs since Linux 6.6) and setfattr (Debian: attr).
    for (const x of XATTRS) await run('setfattr', ['-n', x.name, '-v', `0x${x.value.toString('hex')}`, join(dir, x.path)]);
    xattrs.push(...XATTRS, ...XATTRS.filter((x) => x.path === 'data/random.bin').map((x) => ({ ...x, path: 'data/random-hardlink.bin' })));
    linkSync(join(dir, 'data/random.bin'), join(dir, 'data/random-hardlink.bin'));
    files.push({ ...files.find((f) => f.path === 'data/random.bin')!, path: 'data/random-hardlink.bin' });
    hardLinks.push(['data/random.bin', 'data/random-hardlink.bin']);
  }
  return { files, symlinks, hardLinks, xattrs };
}

/** mkfs.xfs -p's prototype: names without spaces, regular files and symlinks. */
function xfsProto(dir: string, image: Omit<CorpusImage, 'label' | 'file' | 'type' | 'partitionTable'>): string {
  const lines = ['pocketvm', '0 0', 'd--755 0 0'];
  const tree = new Map<string, string[]>();
  for (const f of image.files) {
    const [top, name] = f.path.split('/') as [string, string];
    tree.set(top, [...(tree.get(top) ?? []), `${name} ---644 0 0 ${join(dir, f.path)}`]);
  }
  for (const l of image.symlinks) {
    const [top, name] = l.path.split('/') as [string, string];
    tree.set(top, [...(tree.get(top) ?? []), `${name} l--777 0 0 ${l.target}`]);
  }
  for (const [top, entries] of tree) lines.push(`${top} d--755 0 0`, ...entries, '$');
  lines.push('$');
  return `${lines.join('\n')}\n`;
}

/** Puts a file-system image into partition 1 (from 1 MiB) of a disk with a GPT or MBR. */
async function partitioned(fsImage: string, disk: string, table: 'gpt' | 'dos', fsBytes: number): Promise<void> {
  sized(disk, fsBytes + (2 << 20));
  if (table === 'gpt') await run('sgdisk', ['-n', `1:2048:+${fsBytes >> 20}M`, '-t', '1:8300', disk]);
  else await execa('sfdisk', ['-q', disk], { input: `label: dos\n2048,${fsBytes / 512},83\n` });
  await run('dd', [`if=${fsImage}`, `of=${disk}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none']);
}

export async function makeCorpus(dir: string): Promise<CorpusImage[]> {
  const images: CorpusImage[] = [];
  // ext4 in a GPT, as raw, qcow2 and vmdk.
  const richTree = join(dir, 'tree-rich');
  const rich = await makeTree(richTree, true);
  const ext4 = join(dir, 'ext4.fs');
  sized(ext4, 64 << 20);
  await run('mke2fs', ['-q', '-t', 'ext4', '-L', 'corpus-ext4', '-d', richTree, ext4]);
  const ext4Raw = join(dir, 'ext4-gpt.img');
  await partitioned(ext4, ext4Raw, 'gpt', 64 << 20);
  images.push({ label: 'ext4-gpt-raw', file: ext4Raw, type: 'ext4', partitionTable: 'gpt', ...rich });
  for (const format of ['qcow2', 'vmdk'] as const) {
    const file = join(dir, `ext4-gpt.${format}`);
    await run('qemu-img', ['convert', '-O', format, ext4Raw, file]);
    images.push({ label: `ext4-gpt-${format}`, file, type: 'ext4', partitionTable: 'gpt', ...rich });
  }
  // LUKS2 (argon2id on two threads, as a multi-core PC makes it) with ext4
  // inside, the whole disk: the ext4 made first, then encrypted in place by
  // cryptsetup as an ordinary user (its temporary header goes to cwd; no locks
  // in /run). Small argon2 costs: the appliance runs under TCG.
  const luks = join(dir, 'luks2-ext4.img');
  sized(luks, 80 << 20);
  await run('mke2fs', ['-q', '-t', 'ext4', '-L', 'corpus-luks', '-d', richTree, luks, '64M']);
  await run(
    'cryptsetup',
    [
      'reencrypt',
      '--encrypt',
      '--type',
      'luks2',
      '--reduce-device-size',
      '16M',
      '--pbkdf',
      'argon2id',
      '--pbkdf-memory',
      '32768',
      '--pbkdf-parallel',
      '2',
      '--pbkdf-force-iterations',
      '4',
      '--disable-locks',
      '--key-file',
      '-',
      '-q',
      luks,
    ],
    { input: LUKS_PASSPHRASE, cwd: dir },
  );
  images.push({ label: 'luks2-ext4-raw', file: luks, type: 'ext4', partitionTable: null, ...rich, passphrase: LUKS_PASSPHRASE, volume: '0/luks' });
  // btrfs, the whole disk.
  const btrfs = join(dir, 'btrfs.img');
  sized(btrfs, 128 << 20);
  await run('mkfs.btrfs', ['-q', '-L', 'corpus-btrfs', '--rootdir', richTree, btrfs]);
  images.push({ label: 'btrfs-raw', file: btrfs, type: 'btrfs', partitionTable: null, ...rich });
  // xfs in an MBR: the prototype file cannot name files with spaces, nor hard links.
  const plainTree = join(dir, 'tree-plain');
  const plain = await makeTree(plainTree, false);
  const xfsFiles = { ...plain, symlinks: [{ path: 'data/link-to-os-release', target: '../etc/os-release' }] };
  const proto = join(dir, 'xfs.proto');
  writeFileSync(proto, xfsProto(plainTree, xfsFiles));
  const xfs = join(dir, 'xfs.fs');
  sized(xfs, 300 << 20);
  await run('mkfs.xfs', ['-q', '-f', '-L', 'corpus-xfs', '-p', proto, xfs]);
  const xfsMbr = join(dir, 'xfs-mbr.img');
  await partitioned(xfs, xfsMbr, 'dos', 300 << 20);
  images.push({ label: 'xfs-mbr-raw', file: xfsMbr, type: 'xfs', partitionTable: 'dos', ...xfsFiles, hardLinks: [], xattrs: [] });
  // FAT32 in an MBR, filled with mtools.
  const fat = join(dir, 'fat32.fs');
  await run('mkfs.fat', ['-F', '32', '-n', 'CORPUSFAT', '-C', fat, String(64 << 10)]);
  await run('mcopy', ['-s', '-i', fat, join(plainTree, 'etc'), join(plainTree, 'data'), '::']);
  const fatMbr = join(dir, 'fat32-mbr.img');
  await partitioned(fat, fatMbr, 'dos', 64 << 20);
  images.push({ label: 'fat32-mbr-raw', file: fatMbr, type: 'vfat', partitionTable: 'dos', ...plain });
  // exFAT, NTFS and F2FS as made (no tool fills them without a mount): `files put` writes to them.
  for (const [type, size, command, args] of [
    ['exfat', 64, 'mkfs.exfat', ['-L', 'corpusexfat']],
    ['ntfs', 64, 'mkfs.ntfs', ['-F', '-Q', '-q', '-L', 'corpus-ntfs']],
    ['f2fs', 128, 'mkfs.f2fs', ['-q', '-l', 'corpus-f2fs']],
  ] as const) {
    const file = join(dir, `${type}.img`);
    sized(file, size << 20);
    await run(command, [...args, file]);
    images.push({ label: `${type}-raw`, file, type, partitionTable: null, files: [], symlinks: [], hardLinks: [], xattrs: [] });
  }
  return images;
}

/**
 * The disk LVM and md are made on, inside the appliance (stackScript): a GPT
 * with partition 1 an ext4 holding the rich tree (mounted when the test opens
 * the disk --rw, and copied from there), 2 and 3 for an md RAID1, 4 for an
 * LVM physical volume.
 */
export async function makeStackImage(dir: string): Promise<{ file: string; files: CorpusFile[]; symlinks: CorpusImage['symlinks']; xattrs: CorpusXattr[] }> {
  const tree = join(dir, 'tree-stack');
  const made = await makeTree(tree, true);
  const carrier = join(dir, 'stack-carrier.fs');
  sized(carrier, 24 << 20);
  await run('mke2fs', ['-q', '-t', 'ext4', '-L', 'carrier', '-d', tree, carrier]);
  const file = join(dir, 'stack.img');
  sized(file, 480 << 20);
  await run('sgdisk', ['-n', '1:2048:+24M', '-n', '2:0:+40M', '-n', '3:0:+40M', '-n', '4:0:+360M', '-t', '2:FD00', '-t', '3:FD00', '-t', '4:8E00', file]);
  await run('dd', [`if=${carrier}`, `of=${file}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none']);
  return { file, files: made.files, symlinks: made.symlinks, xattrs: made.xattrs };
}

/** Volumes stackScript makes, as files open names them, and what each holds. */
export const STACK_VOLUMES = [
  { volume: '2/md', type: 'ext4', label: 'stack-md' },
  { volume: '4/corpusvg/data', type: 'xfs', label: 'stack-lvm-xfs' },
  { volume: '4/corpusvg/secret/luks', type: 'ext4', label: 'stack-lvm-luks1' },
] as const;

/**
 * Run as root inside the appliance while the stack disk is open --rw as NAME
 * (its partition 1 mounted): an md RAID1 (metadata 1.2) of partitions 2 and 3
 * with ext4; on partition 4 the volume group corpusvg with `data` (xfs) and
 * `secret` (LUKS1, ext4 inside): each filled from partition 1, then stopped,
 * deactivated and closed again. lvm runs without udev (the appliance has none).
 */
export function stackScript(name: string): string {
  return `set -e
disk=$(cat /run/files/${name}.disk)
src=/mnt/files/${name}
C='devices{obtain_device_list_from_udev=0} activation{udev_sync=0 udev_rules=0 monitoring=0} global{use_lvmpolld=0}'
mkdir -p /run/lock/lvm /run/lvm /tmp/stack
/sbin/mdadm --create /dev/md/corpus --run --level=1 --raid-devices=2 --metadata=1.2 /dev/\${disk}2 /dev/\${disk}3
/sbin/mke2fs -q -t ext4 -L stack-md -d "$src" /dev/md/corpus
/sbin/mdadm --stop /dev/md/corpus
/sbin/lvm pvcreate -q --config "$C" /dev/\${disk}4
/sbin/lvm vgcreate -q --config "$C" corpusvg /dev/\${disk}4
/sbin/lvm lvcreate -q --config "$C" -n data -L 304M corpusvg
/sbin/lvm lvcreate -q --config "$C" -n secret -l 100%FREE corpusvg
/sbin/mkfs.xfs -q -L stack-xfs /dev/mapper/corpusvg-data
mount /dev/mapper/corpusvg-data /tmp/stack
cp -a "$src/etc" "$src/data" /tmp/stack/
# busybox's cp keeps no xattrs: copied by getfattr and setfattr (mke2fs -d copies them itself).
(cd "$src" && getfattr -R -d -m '^user\\.' -e hex etc data) | (cd /tmp/stack && setfattr --restore=-)
umount /tmp/stack
printf %s '${LUKS_PASSPHRASE}' >/tmp/stack.key
/sbin/cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 --key-file /tmp/stack.key /dev/mapper/corpusvg-secret
/sbin/cryptsetup open --key-file /tmp/stack.key /dev/mapper/corpusvg-secret stack-secret
rm /tmp/stack.key
/sbin/mke2fs -q -t ext4 -L stack-luks1 -d "$src" /dev/mapper/stack-secret
/sbin/cryptsetup close stack-secret
/sbin/lvm vgchange -q -an --config "$C" corpusvg
sync
`;
}
