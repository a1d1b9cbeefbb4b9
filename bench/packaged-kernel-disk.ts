// The disk bench/images captures and hands to virt-v2v: a Debian system
// whose kernel is an installed package, made only for the bench.
//
// Why not the tests' corpus disk (test/images/corpus.ts): its kernel is the
// payload's vmlinuz copied into /boot, not a package dpkg knows, and
// virt-v2v converts a Linux guest by the kernels its package database lists
// (it inspects the disk, then stops with "no installed kernel packages were
// found"). So this disk is the corpus's BIOS system (MBR, one ext4 root,
// GRUB's i386-pc modules and a grub.cfg by UUID, fstab by UUID, hostname)
// made from an mmdebstrap minbase that also installs the payload build's
// own Debian kernel package (.cache/payload/debs, the same kernel the
// appliance runs; no other download of a kernel) and initramfs-tools, so
// /boot holds the package's vmlinuz and an initramfs its hook made.
// The tarball and the raw disk are cached under .cache/bench-images/ by a
// hash of everything that makes them.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const CACHE = join(root, '.cache', 'bench-images');
/** Raised when what buildDisk() makes changes. */
const DISK_VERSION = 2;
const ROOT_UUID = '3c1d6a2e-7b4f-4e8a-9d10-5a6b7c8d9e0f';

export interface PackagedKernelDisk {
  raw: string;
  kernelVersion: string;
  /** The kernel package's .deb the system was made with. */
  kernelDeb: string;
}

function sh(command: string, args: string[], input?: string): string {
  return execFileSync(command, args, {
    encoding: 'utf8',
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    ...(input === undefined ? {} : { input }),
  });
}

/** The payload build's kernel package: the appliance's version if recorded, else the newest extracted. */
function kernelDeb(): { deb: string; version: string } {
  const debs = join(root, '.cache', 'payload', 'debs');
  const found = readdirSync(debs)
    .filter((name) => /^linux-image-\d.*_amd64\.deb$/.test(name))
    .map((name) => ({ deb: join(debs, name), version: /^linux-image-([^_]+)_/.exec(name)![1]! }))
    .sort((a, b) => a.version.localeCompare(b.version, 'en', { numeric: true }));
  const newest = found.at(-1);
  if (!newest) throw new Error(`no linux-image .deb under ${debs} (build the payload first: node build.js payload)`);
  return newest;
}

function mmdebstrapArgs(deb: string): string[] {
  // A .deb given by path (it has a slash) is installed by apt like a named package; its dependencies come from the mirror.
  return ['--variant=minbase', `--include=ifupdown,grub-pc-bin,initramfs-tools,${deb}`, 'bookworm'];
}

/** The mmdebstrap tarball, made once (minutes: the kernel's initramfs is made in it) and reused. */
function systemTarball(args: string[], log: (message: string) => void): string {
  const hash = createHash('sha256').update(JSON.stringify(args)).digest('hex').slice(0, 16);
  const tar = join(CACHE, `packaged-kernel-${hash}.tar`);
  if (existsSync(tar)) return tar;
  mkdirSync(CACHE, { recursive: true });
  log(`mmdebstrap ${args.join(' ')} (the bench's virt-v2v system, cached as ${tar})`);
  // --format=tar: mmdebstrap tells the format from the name's extension, and `.partial` has none it knows.
  execFileSync('mmdebstrap', ['--format=tar', ...args, `${tar}.partial-${process.pid}`], { stdio: ['ignore', 'ignore', 'inherit'] });
  renameSync(`${tar}.partial-${process.pid}`, tar);
  return tar;
}

/** The raw disk, built once (mmdebstrap: minutes) and reused. */
export function packagedKernelDisk(log: (message: string) => void): PackagedKernelDisk {
  const { deb, version } = kernelDeb();
  const args = mmdebstrapArgs(deb);
  const key = createHash('sha256').update(JSON.stringify({ DISK_VERSION, args, ROOT_UUID })).digest('hex').slice(0, 16);
  const raw = join(CACHE, `packaged-kernel-${key}.raw`);
  const made = { raw, kernelVersion: version, kernelDeb: deb };
  if (existsSync(raw)) return made;
  mkdirSync(CACHE, { recursive: true });
  const work = join(CACHE, `building-${key}-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const tar = systemTarball(args, log);
    log(`building the bench's virt-v2v disk (cached as ${raw})`);
    const tree = join(work, 'tree');
    mkdirSync(tree);
    sh('tar', ['-xpf', tar, '-C', tree, '--numeric-owner']);
    if (!existsSync(join(tree, `boot/vmlinuz-${version}`)) || !existsSync(join(tree, `boot/initrd.img-${version}`)))
      throw new Error(`the system has no /boot/vmlinuz-${version} and initrd.img-${version} after mmdebstrap`);
    writeFileSync(join(tree, 'etc/hostname'), 'bench-v2v\n');
    writeFileSync(join(tree, 'etc/fstab'), `UUID=${ROOT_UUID} / ext4 errors=remount-ro 0 1\n`);
    writeFileSync(join(tree, 'etc/network/interfaces'), 'auto lo\niface lo inet loopback\n\nallow-hotplug ens3\niface ens3 inet dhcp\n');
    mkdirSync(join(tree, 'boot/grub'), { recursive: true });
    cpSync(join(tree, 'usr/lib/grub/i386-pc'), join(tree, 'boot/grub/i386-pc'), { recursive: true });
    writeFileSync(
      join(tree, 'boot/grub/grub.cfg'),
      `menuentry 'Debian' {\n  search --no-floppy --fs-uuid --set=root ${ROOT_UUID}\n  linux /boot/vmlinuz-${version} root=UUID=${ROOT_UUID} ro\n  initrd /boot/initrd.img-${version}\n}\n`,
    );
    // One ext4 root with 640 MiB free, in an MBR at 1 MiB: virt-v2v checks for free space before it
    // converts, then regenerates the initramfs inside the guest's own file system (/var/tmp), every
    // module of the kernel package: with 128 MiB free it failed there with ENOSPC after 856 s.
    const used = Number(sh('du', ['-sxB1M', tree]).split('\t')[0]);
    const bytes = (used + 640) << 20;
    const fs = join(work, 'root.ext4');
    closeSync(openSync(fs, 'w'));
    truncateSync(fs, bytes);
    sh('mke2fs', ['-q', '-F', '-t', 'ext4', '-U', ROOT_UUID, '-L', 'root', '-d', tree, fs]);
    rmSync(tree, { recursive: true, force: true });
    const partial = join(work, 'disk.raw');
    closeSync(openSync(partial, 'w'));
    truncateSync(partial, bytes + (1 << 20));
    sh('sfdisk', ['-q', partial], `label: dos\n2048,${bytes / 512},83,*\n`);
    sh('dd', [`if=${fs}`, `of=${partial}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none']);
    // Another bench that finished first keeps its disk (one in use must not change under it).
    if (!existsSync(raw)) renameSync(partial, raw);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return made;
}
