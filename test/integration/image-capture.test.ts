// `launcher image capture` (docs/image-store.md, "Capture") on the images
// corpus (test/images/corpus.ts): each system (BIOS, UEFI, and a root on LVM
// with a separate /boot) captured --smaller through one helper appliance (the
// BIOS one from a block device: a read-only loop device over its disk); the new image is smaller, passed its boot check (the
// kernel's banner on the serial port, BIOS by SeaBIOS, UEFI by OVMF), entered
// the catalog with its provenance, inspects to the same facts as its source
// and holds the same file tree: every entry's type, mode, owner, size, mtime,
// link count, hard-link group, symlink target, content hash, holes and every
// xattr (ACLs included), listed in the appliance by stat, sha256sum and
// getfattr (pocketvm-capture manifest), not by the tar that copied them. A
// folder tree with xattrs, an ACL, hard links, a sparse file and odd owners
// is captured into a bootable image and compared with the same listing made
// on the host. The captured BIOS, LVM and UEFI images, each deployed to a raw
// file (`image deploy`), boot under QEMU (SeaBIOS; OVMF with fresh NVRAM)
// from their own GRUB until their initramfs's init starts. Bad sources are refused with exit 45 and change nothing.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  linkSync,
  mkdirSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
  closeSync,
  openSync,
  truncateSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { applianceExec, applianceRequest, findAppliance } from '../../src/appliance/appliance-client.ts';
import { bootCheck } from '../../src/images/boot-check.ts';
import type { CatalogImage } from '../../src/images/image-catalog.ts';
import type { CapturedImage } from '../../src/images/image-capture.ts';
import type { ImageFacts } from '../../src/images/inspect-report.ts';
import { openStick } from '../../src/stick/stick-root.ts';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { buildImageCorpus, type CorpusSystem } from '../images/corpus.ts';
import { freshStick, launcherJson, repoRoot } from './harness.ts';

interface Entry {
  kind: string;
  mode: string;
  owner: string;
  size?: string;
  links?: string;
  sparse: boolean;
  mtime?: string;
  inode: string;
  sha256?: string;
  xattrs: string[];
  group?: string[];
}

/** `pocketvm-capture manifest`'s lines (or the same commands' on the host) as a map path → entry, per file system. */
function parseManifest(text: string, renumber: (n: string) => string = (n) => n): Map<string, Entry> {
  const entries = new Map<string, Entry>();
  const hashes = new Map<string, string>();
  let xfile = '';
  const xattrs = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    let m = /^S (\d+) ([0-9a-f]+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (.*)$/.exec(line);
    if (m) {
      const [, n, hex, mode, uid, gid, size, links, blocks, inode, mtime, path] = m;
      const type = parseInt(hex!, 16) & 0o170000;
      const kind = type === 0o100000 ? 'file' : type === 0o040000 ? 'dir' : type === 0o120000 ? 'symlink' : `other-${type.toString(8)}`;
      entries.set(`${renumber(n!)}:${path}`, {
        kind,
        mode: mode!,
        owner: `${uid}:${gid}`,
        // A folder's size and link count depend on how it was written, not on what it holds.
        ...(kind === 'dir' ? {} : { size: size!, links: links! }),
        sparse: kind === 'file' && Number(blocks) * 512 < Number(size),
        // The root of a file system is made by mkfs, not copied.
        ...(path === '.' ? {} : { mtime: mtime! }),
        inode: `${renumber(n!)}:${inode}`,
        xattrs: [],
      });
      continue;
    }
    m = /^H (\d+) ([0-9a-f]{64}) {2}(.*)$/.exec(line);
    if (m) {
      hashes.set(`${renumber(m[1]!)}:${m[3]}`, m[2]!);
      continue;
    }
    m = /^X (\d+) (.*)$/.exec(line);
    if (m) {
      if (m[2]!.startsWith('# file: ')) xfile = `${renumber(m[1]!)}:${m[2]!.slice(8).replace(/^(?!\.)/, './')}`;
      else xattrs.set(xfile, [...(xattrs.get(xfile) ?? []), m[2]!]);
    }
  }
  const groups = new Map<string, string[]>();
  for (const [path, entry] of entries) {
    entry.sha256 = hashes.get(path);
    entry.xattrs = (xattrs.get(path) ?? []).sort();
    if (entry.kind !== 'dir') groups.set(entry.inode, [...(groups.get(entry.inode) ?? []), path]);
  }
  for (const entry of entries.values()) {
    if (entry.kind !== 'dir' && Number(entry.links) > 1) entry.group = groups.get(entry.inode)!.sort();
    entry.inode = '';
  }
  return entries;
}

/**
 * What grub-install writes when it puts BIOS GRUB on the new disk: /boot/grub's modules, core.img,
 * grubenv, fonts and locale (it replaces the folder's contents, all but grub.cfg). The bootloader
 * made right is the point of capture, so those are not compared; grub.cfg is.
 */
function grubInstalled(path: string): boolean {
  // boot/grub on a root; grub/ at the top of a separate /boot (bios-lvm's).
  return /^\d+:\.\/(boot\/)?grub(\/.|$)/.test(path) && !path.endsWith('/grub/grub.cfg');
}

function assertSameTree(source: Map<string, Entry>, captured: Map<string, Entry>, what: string, skip: (path: string) => boolean = () => false): void {
  assert.ok(source.size > 5, `${what}: the source listing is empty`);
  const missing = [...source.keys()].filter((p) => !captured.has(p) && !skip(p));
  const extra = [...captured.keys()].filter((p) => !source.has(p) && !p.endsWith(':./lost+found') && !skip(p));
  assert.deepEqual({ missing: missing.slice(0, 10), extra: extra.slice(0, 10) }, { missing: [], extra: [] }, what);
  // Holes must stay holes; a run of zeros may become one (mke2fs -d, for a folder, makes holes of zero blocks).
  const seen = (e: Entry | undefined, source: Entry) => (e && !source.sparse ? { ...e, sparse: false } : e);
  const differing = [...source.entries()].filter(([p, e]) => !skip(p) && JSON.stringify(e) !== JSON.stringify(seen(captured.get(p), e)));
  assert.deepEqual(
    differing.slice(0, 3).map(([p, e]) => ({ path: p, source: e, captured: captured.get(p) })),
    [],
    `${what}: ${differing.length} entries differ`,
  );
}

/** A read-only loop device over `file`, or undefined (said on the console) where none can be made. */
function loopDevice(file: string): string | undefined {
  try {
    return execFileSync('losetup', ['--find', '--show', '--read-only', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (error) {
    console.log(`      no loop device here (${(error as Error).message.split('\n')[0]}): captured from the file instead`);
    return undefined;
  }
}

describe('launcher image capture: corpus systems and a folder tree, file by file, boot checked', function () {
  this.timeout(3_600_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let dir: string;
  let corpus: CorpusSystem[];
  const system = (label: CorpusSystem['label']) => corpus.find((s) => s.label === label)!;
  const imageJson = <T>(args: string[]) => launcherJson<T>(['image', ...args, '--stick', stick.root], { timeout: 1_800_000 });
  const incoming = () => readdirSync(join(stick.root, 'images', 'incoming'));

  /** Every file system of a disk, listed in the appliance (plugged read-only). */
  async function manifest(file: string, format: string): Promise<string> {
    const layout = await openStick(stick.root);
    const address = (await findAppliance(layout))!;
    const { target } = await applianceRequest(layout, address, 'plug', { source: file, format, readOnly: true });
    try {
      let out = '';
      const exec = await applianceExec(layout, address, ['/usr/bin/pocketvm-capture', 'manifest', String(target)], {
        stdout: (data) => ((out += data.toString('utf8')), true),
        stderr: () => true,
      });
      exec.end();
      await exec.outcome;
      return out;
    } finally {
      await applianceRequest(layout, address, 'unplug', { target });
    }
  }

  before(async () => {
    const built = await execa('node', ['build.js', 'payload', '--guest', 'appliance'], { cwd: repoRoot, reject: false, timeout: 1_500_000 });
    assert.equal(built.exitCode, 0, String(built.stderr));
    corpus = buildImageCorpus((message) => process.stderr.write(`      corpus: ${message}\n`));
    stick = await freshStick({ savedAppliance: true });
    dir = tempDir('pocketvm-capture-it-');
  });

  after(async () => {
    if (stick) await execa(join(repoRoot, 'launcher'), ['files', 'close', '--all', '--stick', stick.root], { reject: false });
    await stick?.dispose();
    if (dir) removeDir(dir);
  });

  for (const label of ['bios-mbr', 'uefi-gpt', 'bios-lvm'] as const)
    it(`captures ${label} smaller; it boots to its kernel, inspects to the same facts and holds the same file tree`, async () => {
      const built = system(label);
      const name = `${label}-cap`;
      // The BIOS system is captured from a block device (a read-only loop device over its raw disk, as a person's
      // disk would be: QEMU's host_device), the others from their files; where no loop device can be made, from its file.
      const device = label === 'bios-mbr' ? loopDevice(built.raw) : undefined;
      const source = device ?? built.raw;
      const captured = await imageJson<CapturedImage>(['capture', source, '--smaller', '--name', name, '--json']).finally(() => {
        if (device) execFileSync('losetup', ['-d', device]);
      });
      assert.equal(captured.exitCode, 0, captured.stderr);
      const c = captured.json;
      assert.ok(c.virtualBytes < c.sourceVirtualBytes, `${c.virtualBytes} < ${c.sourceVirtualBytes}`);
      assert.equal(c.bootCheck.firmware, built.firmware);
      assert.match(c.bootCheck.banner, new RegExp(`^Linux version ${built.kernelVersion.replaceAll('.', '\\.')} `));
      assert.equal(c.plan.table, built.table);
      assert.deepEqual(c.fstabMissing, []);
      assert.deepEqual(incoming(), [], 'no scratch file is left');
      // In the catalog with its provenance and hashes.
      const shown = await imageJson<CatalogImage>(['show', name]);
      assert.equal(shown.json.sha256, c.sha256);
      assert.equal(shown.json.imports[0]!.source, `captured from ${source}`);
      assert.equal(shown.json.partitionTable.kind, built.table);
      // inspect reports the same facts as for the source.
      const before = await imageJson<ImageFacts>(['inspect', built.raw]);
      const after = await imageJson<ImageFacts>(['inspect', name]);
      assert.equal(after.exitCode, 0, after.stderr);
      for (const fact of ['os', 'architecture', 'kernels', 'bootloader', 'firmware', 'fstab', 'hostname', 'users', 'network', 'packages', 'machineId'] as const)
        assert.deepEqual(after.json[fact], before.json[fact], fact);
      assert.deepEqual(
        after.json.fileSystems.map((f) => [f.partition, f.volume, f.type, f.uuid, f.label, f.mountpoint]),
        before.json.fileSystems.map((f) => [f.partition, f.volume, f.type, f.uuid, f.label, f.mountpoint]),
      );
      assert.equal(after.json.fileSystems.find((f) => f.mountpoint === '/')!.uuid, built.rootUuid);
      if (built.lvm) {
        // The root is still the logical volume of the same volume group, in the same partition (its PV copied whole).
        const root = after.json.fileSystems.find((f) => f.mountpoint === '/')!;
        assert.deepEqual([root.partition, root.volume], [built.lvm.partition, `${built.lvm.vg}/${built.lvm.lv}`]);
        assert.equal(after.json.fileSystems.find((f) => f.partition === built.lvm!.partition && !f.volume)!.type, 'LVM2_member');
        assert.equal(after.json.fileSystems.find((f) => f.mountpoint === '/boot')!.uuid, built.bootUuid);
        assert.equal(after.json.rootPartition, built.lvm.partition);
      }
      // The same file tree, listed independently of the copy.
      const store = join(stick.root, 'images', 'store', `${c.sha256}.qcow2`);
      const bios = built.firmware === 'bios';
      const sourceTree = parseManifest(await manifest(built.raw, 'raw'));
      // On LVM the root's files are listed too (its volume group activated in the appliance: number 101).
      if (built.lvm) assert.ok(sourceTree.has('101:./etc/fstab'), 'the logical volume is listed');
      assertSameTree(sourceTree, parseManifest(await manifest(store, 'qcow2')), label, bios ? grubInstalled : undefined);
    });

  for (const label of ['bios-mbr', 'bios-lvm'] as const)
    it(`a captured ${label} deployed to a raw file boots under QEMU from its own GRUB to its initramfs, by SeaBIOS`, async () => {
      // image deploy of the captured BIOS image (GRUB in its MBR; for bios-lvm, /boot its own partition beside the
      // physical volume), then QEMU on the raw file (a throwaway overlay over it).
      const raw = join(dir, `deployed-${label}.raw`);
      const deployed = await imageJson<unknown>(['deploy', `${label}-cap`, raw]);
      assert.equal(deployed.exitCode, 0, deployed.stderr);
      const overlay = join(dir, `deployed-${label}.overlay.qcow2`);
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', raw, '-F', 'raw', overlay]);
      const booted = await bootCheck(stick.root, overlay, 'bios', join(dir, `deployed-${label}`), 900_000, { until: 'Run /init as init process' });
      assert.match(booted.banner, /Run \/init as init process/, 'GRUB loaded the kernel and the initramfs by UUID and its init started');
    });

  it('a captured UEFI image deployed to a raw file boots under QEMU with OVMF from its own ESP and GRUB to its initramfs', async () => {
    // image deploy of the captured UEFI image (an ESP with EFI/BOOT/BOOTX64.EFI), then QEMU with OVMF on the raw file:
    // fresh NVRAM variables, so the firmware finds the bootloader only by the removable-media path on the new ESP.
    const raw = join(dir, 'deployed-uefi.raw');
    const deployed = await imageJson<unknown>(['deploy', 'uefi-gpt-cap', raw]);
    assert.equal(deployed.exitCode, 0, deployed.stderr);
    const overlay = join(dir, 'deployed-uefi.overlay.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', raw, '-F', 'raw', overlay]);
    const booted = await bootCheck(stick.root, overlay, 'uefi', join(dir, 'deployed-uefi'), 900_000, { until: 'Run /init as init process' });
    assert.equal(booted.firmware, 'uefi');
    assert.match(booted.banner, /Run \/init as init process/, 'OVMF loaded GRUB from the ESP, GRUB the kernel and the initramfs by UUID, and its init started');
  });

  it('captures a folder tree (xattrs, an ACL, hard links, holes, owners) into a bootable BIOS image with the same tree', async () => {
    const tree = join(dir, 'tree');
    const version = system('bios-mbr').kernelVersion;
    mkdirSync(join(tree, 'boot/grub'), { recursive: true });
    mkdirSync(join(tree, 'etc'), { recursive: true });
    cpSync(join(repoRoot, 'payload/default/vmlinuz'), join(tree, `boot/vmlinuz-${version}`));
    cpSync(join(repoRoot, 'payload/default/initrd.img'), join(tree, `boot/initrd.img-${version}`));
    writeFileSync(
      join(tree, 'boot/grub/grub.cfg'),
      `menuentry 'tree' {\n  linux /boot/vmlinuz-${version} root=LABEL=root ro\n  initrd /boot/initrd.img-${version}\n}\n`,
    );
    writeFileSync(join(tree, 'etc/fstab'), 'LABEL=root / ext4 defaults 0 1\n');
    // GRUB's BIOS modules, from the corpus's Debian (grub-pc-bin), where grub-install looks for them.
    const tarball = readdirSync(join(repoRoot, '.cache/images-corpus')).find((f) => f.startsWith('minbase-') && f.endsWith('.tar'))!;
    execFileSync('tar', ['-xf', join(repoRoot, '.cache/images-corpus', tarball), '-C', tree, './usr/lib/grub/i386-pc']);
    const data = join(tree, 'data');
    mkdirSync(data);
    writeFileSync(join(data, 'tagged'), 'colourful\n');
    execFileSync('setfattr', ['-n', 'user.colour', '-v', 'blue', join(data, 'tagged')]);
    execFileSync('setfattr', ['-n', 'trusted.pocketvm', '-v', '0x00ff10', join(data, 'tagged')]);
    writeFileSync(join(data, 'shared'), 'one file, three names\n');
    execFileSync('setfacl', ['-m', 'u:4321:rw,g:555:r', join(data, 'shared')]);
    linkSync(join(data, 'shared'), join(data, 'second-name'));
    mkdirSync(join(data, 'sub'));
    linkSync(join(data, 'shared'), join(data, 'sub', 'third-name'));
    symlinkSync('../shared', join(data, 'sub', 'to-shared'));
    symlinkSync('/nowhere/at/all', join(data, 'dangling'));
    const sparse = join(data, 'sparse');
    const fd = openSync(sparse, 'w');
    writeSync(fd, 'head', 0);
    writeSync(fd, 'middle', 32 << 20);
    closeSync(fd);
    truncateSync(sparse, 64 << 20);
    writeFileSync(join(data, 'owned'), 'by someone else\n');
    chownSync(join(data, 'owned'), 1234, 5678);
    chmodSync(join(data, 'owned'), 0o640);
    writeFileSync(join(data, 'setuid'), '#!/bin/sh\n');
    chmodSync(join(data, 'setuid'), 0o4755);
    mkdirSync(join(data, 'sticky'));
    chmodSync(join(data, 'sticky'), 0o1777);
    execFileSync('mkfifo', [join(data, 'fifo')]);
    const captured = await imageJson<CapturedImage>(['capture', tree, '--name', 'tree', '--json']);
    assert.equal(captured.exitCode, 0, captured.stderr);
    assert.equal(captured.json.bootCheck.firmware, 'bios');
    assert.equal(captured.json.plan.table, 'dos');
    assert.deepEqual(incoming(), []);
    // The host's listing of the folder, by the same commands as the appliance's (GNU stat, sha256sum, getfattr).
    const host = execFileSync(
      'sh',
      [
        '-c',
        `cd "$1" && find . -xdev -exec stat -c "S 0 %f %a %u %g %s %h %b %i %Y %n" {} + && find . -xdev -type f -exec sha256sum {} + | sed "s/^/H 0 /" && getfattr -R -P -d -m - -e hex . 2>/dev/null | grep . | sed "s/^/X 0 /"`,
        'sh',
        tree,
      ],
      { encoding: 'utf8', maxBuffer: 64 << 20 },
    );
    const source = parseManifest(host, () => '1');
    const copy = parseManifest(await manifest(join(stick.root, 'images', 'store', `${captured.json.sha256}.qcow2`), 'qcow2'));
    // The folder's own mtime changes as the test writes into it; the rest must match.
    assertSameTree(source, copy, 'folder', grubInstalled);
    assert.ok(source.get('1:./data/sparse')!.sparse && copy.get('1:./data/sparse')!.sparse, 'the holes stay holes');
    assert.equal(copy.get('1:./data/shared')!.group!.length, 3);
    assert.ok(copy.get('1:./data/shared')!.xattrs.some((x) => x.startsWith('system.posix_acl_access=')));
    assert.ok(copy.get('1:./data/tagged')!.xattrs.includes('user.colour=0x626c7565'));
  });

  it('refuses a source it cannot capture (exit 45) and leaves the store as it was', async () => {
    const text = join(dir, 'notes.txt');
    writeFileSync(text, 'not a disk\n');
    const listed = await imageJson<CatalogImage[]>(['list']);
    const store = readdirSync(join(stick.root, 'images', 'store')).sort();
    for (const [args, reason] of [
      [[text], 'no-source'],
      [[join(dir, 'missing.img')], 'no-source'],
      [[system('bios-mbr').raw, '--name', 'tree'], 'name-taken'],
      [[system('bios-mbr').raw, '--name', 'Bad Name'], 'bad-name'],
    ] as const) {
      const refused = await imageJson<{ error: { reason: string } }>(['capture', ...args, '--json']);
      assert.equal(refused.exitCode, 45, `${args.join(' ')}: ${refused.stderr}`);
      assert.equal(refused.json.error.reason, reason);
    }
    assert.deepEqual((await imageJson<CatalogImage[]>(['list'])).json, listed.json);
    assert.deepEqual(readdirSync(join(stick.root, 'images', 'store')).sort(), store);
    assert.deepEqual(incoming(), []);
  });
});
