// The corpus `launcher files` is tested on, made with each file system's own
// tools on image files, as an ordinary user (no mount, no loop device, no
// root): mke2fs -d, mkfs.xfs -p, mkfs.btrfs --rootdir, mkfs.fat + mcopy,
// mkfs.exfat, mkfs.ntfs, mkfs.f2fs; sgdisk and sfdisk for the partition
// tables; qemu-img convert for qcow2 and vmdk. Every file is known by its
// hash. HFS+ is missing: Debian bookworm has no hfsprogs to make one.
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
}

export const LONG_NAME = `${'long-name-'.repeat(20)}end.txt`;
export const UNICODE_NAME = 'Grüße—日本語✓.txt';
const SPARSE_BYTES = 8 << 20;

/** A new sparse file of that size. */
function sized(file: string, bytes: number): void {
  writeFileSync(file, '');
  truncateSync(file, bytes);
}

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function run(command: string, args: string[], env: Record<string, string> = {}): Promise<void> {
  const result = await execa(command, args, { reject: false, env: { LANG: 'C.UTF-8', ...env } });
  if (result.exitCode !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${String(result.stderr)}`);
}

/** The file tree every image starts from; `rich` adds what only Unix file systems hold. */
function makeTree(dir: string, rich: boolean): Omit<CorpusImage, 'label' | 'file' | 'type' | 'partitionTable'> {
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
  if (rich) {
    // Sparse: 8 MiB with one block of data at the end.
    const sparse = join(dir, 'data/sparse.bin');
    writeFileSync(sparse, '');
    truncateSync(sparse, SPARSE_BYTES - 4);
    appendFileSync(sparse, 'end\n');
    files.push({ path: 'data/sparse.bin', sha256: sha(readFileSync(sparse)), bytes: SPARSE_BYTES });
    symlinkSync('../etc/os-release', join(dir, 'data/link-to-os-release'));
    symlinks.push({ path: 'data/link-to-os-release', target: '../etc/os-release' });
    linkSync(join(dir, 'data/random.bin'), join(dir, 'data/random-hardlink.bin'));
    files.push({ ...files.find((f) => f.path === 'data/random.bin')!, path: 'data/random-hardlink.bin' });
    hardLinks.push(['data/random.bin', 'data/random-hardlink.bin']);
  }
  return { files, symlinks, hardLinks };
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
  const rich = makeTree(richTree, true);
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
  // btrfs, the whole disk.
  const btrfs = join(dir, 'btrfs.img');
  sized(btrfs, 128 << 20);
  await run('mkfs.btrfs', ['-q', '-L', 'corpus-btrfs', '--rootdir', richTree, btrfs]);
  images.push({ label: 'btrfs-raw', file: btrfs, type: 'btrfs', partitionTable: null, ...rich });
  // xfs in an MBR: the prototype file cannot name files with spaces, nor hard links.
  const plainTree = join(dir, 'tree-plain');
  const plain = makeTree(plainTree, false);
  const xfsFiles = { ...plain, symlinks: [{ path: 'data/link-to-os-release', target: '../etc/os-release' }] };
  const proto = join(dir, 'xfs.proto');
  writeFileSync(proto, xfsProto(plainTree, xfsFiles));
  const xfs = join(dir, 'xfs.fs');
  sized(xfs, 300 << 20);
  await run('mkfs.xfs', ['-q', '-f', '-L', 'corpus-xfs', '-p', proto, xfs]);
  const xfsMbr = join(dir, 'xfs-mbr.img');
  await partitioned(xfs, xfsMbr, 'dos', 300 << 20);
  images.push({ label: 'xfs-mbr-raw', file: xfsMbr, type: 'xfs', partitionTable: 'dos', ...xfsFiles, hardLinks: [] });
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
    images.push({ label: `${type}-raw`, file, type, partitionTable: null, files: [], symlinks: [], hardLinks: [] });
  }
  return images;
}
