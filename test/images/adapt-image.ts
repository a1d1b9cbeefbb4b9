// The adapt test's image (issue 22, docs/adapt.md): a small Debian made as an
// image for a SATA/e1000 hypervisor is made — its own kernel (linux-image-amd64),
// GRUB in the MBR, and an initramfs built WITHOUT virtio drivers:
//
//   - mmdebstrap from the machine's apt sources, --variant=minbase with the
//     kernel, initramfs-tools, systemd and GRUB's BIOS modules;
//   - the initramfs made again with MODULES=list and only SATA's and ext4's
//     modules (ahci, sd_mod, ata_piix, ext4): no virtio_blk, so under the
//     stick's virtio disk the initramfs finds no root;
//   - fstab and the kernel line name the root /dev/sda1 (by device name, as the
//     SATA hypervisor it was made for calls it), the kernel writes to ttyS0,
//     /etc/network/interfaces names enp0s3 (VirtualBox's slot);
//   - a unit that prints MARKER (and the guest's uptime) on ttyS0 once the
//     root is mounted, ordered before cloud-init so the boots that wait only
//     for the marker (import's test, bench/adapt.ts) do not wait for it;
//   - cloud-init, as a cloud image has it, reading only NoCloud seeds
//     (`datasource_list: [NoCloud, None]`: it never waits on a network
//     datasource) and running only the modules a seed from `launcher export
//     --to nocloud` needs (host name, users), so it stays short under TCG;
//     and a unit after it that reports on ttyS0 what cloud-init made of the
//     seed (host name, instance, users, their keys, sudo rules, the cards and
//     the interfaces cloud-init's ifupdown file names): the adapt test's
//     "the NoCloud seed sets hostname and user in a real cloud-init guest";
//   - GRUB's core.img made by the image's own grub-mkimage and written into
//     the MBR gap by hand (boot.img's 446 bytes, core.img from sector 1 and
//     diskboot's block list patched with its length, as grub-setup does), so
//     no loop device is needed.
//
// Cached under .cache/adapt-image/ by a hash of everything that makes it
// (a few minutes once; then nothing).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
  cpSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitForPrefetch } from './fixture-prefetch.ts';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CACHE = join(repo, '.cache', 'adapt-image');

export const ADAPT_MARKER = 'pocketvm-adapt-marker-7f3c';
/** Each line of the cloud-init report starts with this, then a fact: `hostname NOW FILE`, `instance ID`, `user NAME SHELL PW`, `key USER TYPE BLOB`, `sudo RULE`, `nic NAME MAC`, `eni NAMES`. */
export const CLOUDINIT_REPORT = 'pocketvm-cloudinit ';
/** The report's last line, with the guest's uptime when it was printed. */
export const CLOUDINIT_DONE = 'pocketvm-cloudinit-done';

const VERSION = 2;
const INCLUDE = 'linux-image-amd64,initramfs-tools,kmod,udev,systemd-sysv,ifupdown,grub-pc-bin,grub2-common,cloud-init';

/**
 * cloud-init's settings in the image: NoCloud only, and the modules a seed from our exporter needs (src/export/nocloud-seed.ts).
 * Named 99_ so it is read last: cloud-init and its ds-identify take the last datasource_list (Debian's postinst writes 90_dpkg.cfg).
 */
const CLOUD_CFG = `# The adapt test's image (test/images/adapt-image.ts): a NoCloud seed or nothing, never a network datasource.
datasource_list: [NoCloud, None]
cloud_init_modules: [set_hostname, update_hostname, users-groups]
cloud_config_modules: []
cloud_final_modules: []
`;

/** What cloud-init made of the seed, one short line a fact on ttyS0 (short lines: the console writes between them). */
const REPORT_SCRIPT = `#!/bin/sh
say() { echo "${CLOUDINIT_REPORT}$*" >/dev/ttyS0; }
say hostname "$(hostname)" "$(cat /etc/hostname)"
say instance "$(cat /var/lib/cloud/data/instance-id 2>/dev/null)"
awk -F: '$3 >= 1000 && $3 < 60000 { print $1, $6, $7 }' /etc/passwd | while read -r name home shell; do
  say user "$name" "$shell" "$(awk -F: -v u="$name" '$1 == u { print substr($2, 1, 1) }' /etc/shadow)"
  [ -f "$home/.ssh/authorized_keys" ] && grep -v '^#' "$home/.ssh/authorized_keys" | while read -r type blob rest; do say key "$name" "$type" "$blob"; done
done
cat /etc/sudoers.d/* 2>/dev/null | grep -v '^#' | grep . | while read -r rule; do say sudo "$rule"; done
for dev in /sys/class/net/*; do [ "\${dev##*/}" = lo ] || say nic "\${dev##*/}" "$(cat "$dev/address")"; done
say eni $(awk '$1 == "iface" && $2 != "lo" { print $2 }' /etc/network/interfaces.d/50-cloud-init 2>/dev/null)
read -r up rest </proc/uptime
echo "${CLOUDINIT_DONE} $up" >/dev/ttyS0
`;
const SATA_ONLY = ['ahci', 'ata_piix', 'sd_mod', 'ext4'];
const ROOT_UUID = '3c1d0a9e-5f6b-4c2d-8e7f-a1b2c3d4e5f6';

export interface AdaptImage {
  raw: string;
  kernelVersion: string;
  rootUuid: string;
}

function sh(command: string, args: string[], input?: string): string {
  return execFileSync(command, args, {
    encoding: 'utf8',
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    ...(input === undefined ? {} : { input }),
  });
}

function tree(dir: string, log: (message: string) => void): void {
  const hooks = [
    // MODULES=list: only what /etc/initramfs-tools/modules names (no auto-added storage drivers).
    `--customize-hook=sed -i 's/^MODULES=.*/MODULES=list/' "$1/etc/initramfs-tools/initramfs.conf"`,
    `--customize-hook=printf '%s\\n' ${SATA_ONLY.join(' ')} >"$1/etc/initramfs-tools/modules"`,
    '--customize-hook=chroot "$1" update-initramfs -u -k all',
  ];
  log(`mmdebstrap --variant=minbase --include=${INCLUDE} bookworm (cached in ${CACHE})`);
  execFileSync('mmdebstrap', ['--variant=minbase', `--include=${INCLUDE}`, ...hooks, 'bookworm', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
}

export function adaptImage(log: (message: string) => void = () => {}): AdaptImage {
  waitForPrefetch('adapt-image', log);
  const hash = createHash('sha256')
    .update(JSON.stringify([VERSION, INCLUDE, SATA_ONLY, ROOT_UUID, ADAPT_MARKER, CLOUD_CFG, REPORT_SCRIPT]))
    .digest('hex')
    .slice(0, 16);
  const dir = join(CACHE, hash);
  const raw = join(dir, 'sata-only.raw');
  const meta = join(dir, 'image.json');
  // The disk beside its facts, wherever the cache was made (a worktree's .cache may be a copy of another's).
  if (existsSync(meta)) return { ...(JSON.parse(readFileSync(meta, 'utf8')) as AdaptImage), raw };
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const root = join(dir, 'tree');
  tree(root, log);
  const kernelVersion = readdirSync(join(root, 'lib/modules'))[0]!;
  const initrd = sh('chroot', [root, 'lsinitramfs', `/boot/initrd.img-${kernelVersion}`]);
  if (/virtio_blk/.test(initrd) || !/ahci/.test(initrd)) throw new Error('the test initramfs was not made as asked (virtio_blk in it, or no ahci)');
  writeFileSync(join(root, 'etc/hostname'), 'sata-only\n');
  writeFileSync(join(root, 'etc/fstab'), '/dev/sda1 / ext4 errors=remount-ro 0 1\n');
  writeFileSync(join(root, 'etc/network/interfaces'), 'auto lo\niface lo inet loopback\n\nallow-hotplug enp0s3\niface enp0s3 inet dhcp\n');
  writeFileSync(join(root, 'etc/default/grub'), 'GRUB_DEFAULT=0\nGRUB_TIMEOUT=0\nGRUB_CMDLINE_LINUX_DEFAULT=""\nGRUB_CMDLINE_LINUX="console=ttyS0,115200"\n');
  writeFileSync(
    join(root, 'etc/systemd/system/adapt-marker.service'),
    `[Unit]\nDescription=the adapt test's marker\nDefaultDependencies=no\nAfter=local-fs.target\nBefore=cloud-init-local.service\n\n[Service]\nType=oneshot\nExecStart=/bin/sh -c 'read -r up rest </proc/uptime; echo "${ADAPT_MARKER} $$up" >/dev/ttyS0'\n\n[Install]\nWantedBy=sysinit.target\n`,
  );
  writeFileSync(join(root, 'etc/cloud/cloud.cfg.d/99_pocketvm-test.cfg'), CLOUD_CFG);
  writeFileSync(join(root, 'usr/local/sbin/pocketvm-cloudinit-report'), REPORT_SCRIPT, { mode: 0o755 });
  writeFileSync(
    join(root, 'etc/systemd/system/cloudinit-report.service'),
    `[Unit]\nDescription=the adapt test's report of what cloud-init made of its seed\nDefaultDependencies=no\nAfter=cloud-init.service adapt-marker.service\n\n[Service]\nType=oneshot\nExecStart=/usr/local/sbin/pocketvm-cloudinit-report\n\n[Install]\nWantedBy=sysinit.target\n`,
  );
  mkdirSync(join(root, 'etc/systemd/system/sysinit.target.wants'), { recursive: true });
  for (const unit of ['adapt-marker.service', 'cloudinit-report.service'])
    sh('ln', ['-sf', `../${unit}`, join(root, 'etc/systemd/system/sysinit.target.wants', unit)]);
  writeFileSync(join(root, 'etc/shadow'), readFileSync(join(root, 'etc/shadow'), 'utf8').replace(/^root:[^:]*:/m, 'root::'));
  cpSync(join(root, 'usr/lib/grub/i386-pc'), join(root, 'boot/grub/i386-pc'), { recursive: true });
  writeFileSync(
    join(root, 'boot/grub/grub.cfg'),
    `set timeout=0\nmenuentry 'Debian GNU/Linux' {\n  insmod ext2\n  linux /boot/vmlinuz-${kernelVersion} root=/dev/sda1 ro console=ttyS0,115200\n  initrd /boot/initrd.img-${kernelVersion}\n}\n`,
  );
  sh('chroot', [
    root,
    'grub-mkimage',
    '-O',
    'i386-pc',
    '-o',
    '/tmp/core.img',
    '-p',
    '(hd0,msdos1)/boot/grub',
    'biosdisk',
    'part_msdos',
    'ext2',
    'normal',
    'linux',
    'configfile',
    'search',
    'echo',
    'test',
  ]);
  const core = readFileSync(join(root, 'tmp/core.img'));
  rmSync(join(root, 'tmp/core.img'));
  const bootImg = readFileSync(join(root, 'usr/lib/grub/i386-pc/boot.img'));
  // The root file system, 128 MiB of room over what the tree uses.
  const fs = join(dir, 'root.ext4');
  const used = Number(sh('du', ['-sxB1M', root]).split('\t')[0]);
  const bytes = (used + 128) << 20;
  closeSync(openSync(fs, 'w'));
  truncateSync(fs, bytes);
  sh('mke2fs', ['-q', '-F', '-t', 'ext4', '-U', ROOT_UUID, '-d', root, fs]);
  const partial = `${raw}.partial`;
  closeSync(openSync(partial, 'w'));
  truncateSync(partial, bytes + (1 << 20));
  sh('sfdisk', ['-q', partial], `label: dos\nlabel-id: 0x5a7a0001\n2048,${bytes / 512},83,*\n`);
  sh('dd', [`if=${fs}`, `of=${partial}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none']);
  rmSync(fs);
  // grub-setup's work for a BIOS disk: boot.img's code (not the partition table) in the MBR,
  // core.img from sector 1 with diskboot's block list (at 500: start sector, 508: sectors) naming the rest.
  const sectors = Math.ceil(core.length / 512);
  if (sectors > 2000) throw new Error('core.img does not fit before the partition');
  const padded = Buffer.alloc(sectors * 512);
  core.copy(padded);
  padded.writeBigUInt64LE(2n, 500);
  padded.writeUInt16LE(sectors - 1, 508);
  const fd = openSync(partial, 'r+');
  writeSync(fd, bootImg, 0, 446, 0);
  writeSync(fd, padded, 0, padded.length, 512);
  closeSync(fd);
  renameSync(partial, raw);
  rmSync(root, { recursive: true, force: true });
  const made: AdaptImage = { raw, kernelVersion, rootUuid: ROOT_UUID };
  writeFileSync(meta, JSON.stringify(made));
  return made;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(adaptImage((m) => console.error(m)));
