// `launcher image` on a corpus made with mmdebstrap (test/images/corpus.ts):
// a BIOS system in an MBR (ext4), a UEFI system in a GPT (ESP, ext4, xfs) and
// a root on LVM (MBR: /boot, a PV with the root's logical volume), each
// converted with qemu-img and tar to vmdk, vhdx, vdi and OVA (the BIOS one
// also to a split vmdk, vhd and qcow2). Every form of one system imports to the same
// store file (content-addressed: deduplicated), stored sparse; the catalog
// keeps each import's provenance. A damaged image and a file that is no
// image are refused with exit 40 and leave the store as it was. The systems
// are inspected in one helper appliance and the facts compared with what the
// corpus built and with virt-inspector on the same raw disk. rm refuses an
// image a guest is made from. One appliance start for the whole file,
// resumed from the state an earlier test file saved (shared-appliance-state.ts;
// a boot when run alone).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync, copyFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { buildImageCorpus, type CorpusSystem } from '../images/corpus.ts';
import type { CatalogImage } from '../../src/images/image-catalog.ts';
import type { ImportedImage } from '../../src/images/image-import.ts';
import type { ImageFacts } from '../../src/images/inspect-report.ts';
import { freshStick, launcher, launcherJson, repoRoot } from './harness.ts';
import { virtInspector } from './virt-inspector.ts';

const qemuImg = (args: string[]) => execFileSync('qemu-img', args, { stdio: ['ignore', 'pipe', 'pipe'] });

/** An OVA as VirtualBox and VMware write it: the OVF first, then a streamOptimized vmdk. */
function makeOva(raw: string, dir: string, name: string): string {
  const vmdk = join(dir, `${name}-disk1.vmdk`);
  qemuImg(['convert', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);
  const ovf = join(dir, `${name}.ovf`);
  writeFileSync(
    ovf,
    `<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:id="file1" ovf:href="${name}-disk1.vmdk"/></References>
  <DiskSection><Info>disks</Info><Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="${statSync(raw).size}" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/></DiskSection>
  <VirtualSystem ovf:id="${name}"><Info>a corpus system</Info></VirtualSystem>
</Envelope>
`,
  );
  const ova = join(dir, `${name}.ova`);
  execFileSync('tar', ['--format=ustar', '-cf', ova, '-C', dir, `${name}.ovf`, `${name}-disk1.vmdk`]);
  return ova;
}

describe('launcher image: import, list, show, rm, inspect on a Debian corpus', function () {
  this.timeout(3_600_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let dir: string;
  let corpus: CorpusSystem[];
  const system = (label: CorpusSystem['label']) => corpus.find((s) => s.label === label)!;
  const image = (args: string[]) => launcher(['image', ...args, '--stick', stick.root], { timeout: 1_200_000 });
  const imageJson = <T>(args: string[]) => launcherJson<T>(['image', ...args, '--stick', stick.root], { timeout: 1_200_000 });
  const storeFiles = () => readdirSync(join(stick.root, 'images', 'store')).sort();
  const forms = new Map<string, string>();

  before(async () => {
    const built = await execa('node', ['build.js', 'payload', '--guest', 'appliance'], { cwd: repoRoot, reject: false, timeout: 1_500_000 });
    assert.equal(built.exitCode, 0, String(built.stderr));
    corpus = buildImageCorpus((message) => process.stderr.write(`      corpus: ${message}\n`));
    stick = await freshStick({ savedAppliance: true });
    dir = tempDir('pocketvm-images-it-');
    const bios = system('bios-mbr').raw;
    const at = (name: string) => join(dir, name);
    qemuImg(['convert', '-O', 'vmdk', bios, at('bios.vmdk')]);
    mkdirSync(at('split'));
    qemuImg(['convert', '-O', 'vmdk', '-o', 'subformat=twoGbMaxExtentSparse', bios, at('split/bios-split.vmdk')]);
    qemuImg(['convert', '-O', 'vhdx', bios, at('bios.vhdx')]);
    qemuImg(['convert', '-O', 'vpc', '-o', 'force_size=on', bios, at('bios.vhd')]);
    qemuImg(['convert', '-O', 'vdi', bios, at('bios.vdi')]);
    qemuImg(['convert', '-O', 'qcow2', bios, at('bios.qcow2')]);
    for (const [form, file] of [
      ['vmdk', at('bios.vmdk')],
      ['vmdk-split', at('split/bios-split.vmdk')],
      ['vhdx', at('bios.vhdx')],
      ['vhd', at('bios.vhd')],
      ['vdi', at('bios.vdi')],
      ['qcow2', at('bios.qcow2')],
      ['ova', makeOva(bios, dir, 'bios-ova')],
    ] as const)
      forms.set(form, file);
    // The other systems in the formats other hypervisors write: vmdk, vhdx, vdi and an OVA.
    for (const [prefix, label] of [
      ['uefi', 'uefi-gpt'],
      ['lvm', 'bios-lvm'],
    ] as const) {
      const raw = system(label).raw;
      for (const [format, ext] of [
        ['vmdk', 'vmdk'],
        ['vhdx', 'vhdx'],
        ['vdi', 'vdi'],
      ] as const) {
        qemuImg(['convert', '-O', format, raw, at(`${prefix}.${ext}`)]);
        forms.set(`${prefix}-${ext}`, at(`${prefix}.${ext}`));
      }
      forms.set(`${prefix}-ova`, makeOva(raw, dir, `${prefix}-ova`));
    }
  });

  after(async () => {
    if (stick) {
      await launcher(['files', 'close', '--all', '--stick', stick.root], { timeout: 300_000 });
      await stick.dispose();
    }
    if (dir) removeDir(dir);
  });

  let biosHash = '';

  it('imports the raw BIOS disk sparse, named by the sha256 of its content', async () => {
    const { exitCode, json, stderr } = await imageJson<ImportedImage[]>(['import', system('bios-mbr').raw, '--name', 'bios']);
    assert.equal(exitCode, 0, stderr);
    const [imported] = json;
    const expected = execFileSync('sha256sum', [system('bios-mbr').raw], { encoding: 'utf8' }).split(' ')[0];
    assert.equal(imported!.sha256, expected, 'the content hash is the raw disk bytes');
    assert.equal(imported!.deduplicated, false);
    assert.equal(imported!.partitionTable, 'dos');
    assert.equal(imported!.virtualBytes, statSync(system('bios-mbr').raw).size);
    assert.ok(imported!.allocatedBytes < imported!.virtualBytes, `sparse: ${imported!.allocatedBytes} on disk for ${imported!.virtualBytes} virtual`);
    biosHash = imported!.sha256;
    assert.deepEqual(storeFiles(), [`${biosHash}.qcow2`]);
    const info = JSON.parse(qemuImg(['info', '--output=json', join(stick.root, 'images', 'store', `${biosHash}.qcow2`)]).toString()) as { format: string };
    assert.equal(info.format, 'qcow2');
  });

  for (const form of ['vmdk', 'vmdk-split', 'vhdx', 'vhd', 'vdi', 'qcow2', 'ova'])
    it(`imports the same system as ${form}: the same content, one store file, its provenance kept`, async () => {
      const { exitCode, json, stderr } = await imageJson<ImportedImage[]>(['import', forms.get(form)!]);
      assert.equal(exitCode, 0, stderr);
      assert.equal(json.length, 1);
      assert.equal(json[0]!.sha256, biosHash, `${form} holds the same disk`);
      assert.equal(json[0]!.deduplicated, true);
      assert.equal(json[0]!.name, 'bios');
      assert.deepEqual(storeFiles(), [`${biosHash}.qcow2`]);
    });

  it('shows every import of the one image in the catalog', async () => {
    const { json } = await imageJson<CatalogImage>(['show', 'bios']);
    assert.deepEqual(
      json.imports.map((i) => i.format),
      ['raw', 'vmdk', 'vmdk', 'vhdx', 'vpc', 'vdi', 'qcow2', 'vmdk'],
    );
    assert.ok(json.imports.at(-1)!.member?.endsWith('-disk1.vmdk'), 'the OVA member is recorded');
    assert.ok(json.imports[2]!.sourceBytes > 1 << 20, 'a split vmdk counts its extent files, not only its descriptor');
    assert.equal(json.partitionTable.partitions.length, 1);
  });

  it('imports the same system from a block device (a read-only loop device over the raw disk): the same content, one store file', async function () {
    // A whole physical disk is read as the block device it is (its size from the device, not a file's length); a loop
    // device stands in for it here. Last among the BIOS imports, so the list above stays the files' imports.
    let device: string;
    try {
      device = execFileSync('losetup', ['--find', '--show', '--read-only', system('bios-mbr').raw], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      }).trim();
    } catch (error) {
      console.log(`      no loop device here (${(error as Error).message.split('\n')[0]}): the block-device import is not checked`);
      this.skip();
    }
    try {
      const { exitCode, json, stderr } = await imageJson<ImportedImage[]>(['import', device]);
      assert.equal(exitCode, 0, stderr);
      assert.equal(json[0]!.sha256, biosHash, 'the device holds the same disk');
      assert.equal(json[0]!.deduplicated, true);
      assert.equal(json[0]!.virtualBytes, statSync(system('bios-mbr').raw).size, "the device's size, read from the device");
      assert.deepEqual(storeFiles(), [`${biosHash}.qcow2`]);
      const { json: shown } = await imageJson<CatalogImage>(['show', 'bios']);
      assert.equal(shown.imports.at(-1)!.source, device);
    } finally {
      execFileSync('losetup', ['-d', device]);
    }
  });

  const hashes: Record<string, string> = {};

  for (const [name, label, table] of [
    ['uefi', 'uefi-gpt', 'gpt'],
    ['lvm', 'bios-lvm', 'dos'],
  ] as const)
    it(`imports ${label} from an OVA, a vmdk, a vhdx and a vdi as one image of its own: its raw disk's content`, async () => {
      const fromOva = await imageJson<ImportedImage[]>(['import', forms.get(`${name}-ova`)!, '--name', name]);
      assert.equal(fromOva.exitCode, 0, fromOva.stderr);
      assert.equal(fromOva.json[0]!.partitionTable, table);
      hashes[name] = fromOva.json[0]!.sha256;
      assert.equal(hashes[name], execFileSync('sha256sum', [system(label).raw], { encoding: 'utf8' }).split(' ')[0], 'the raw disk, byte for byte');
      for (const form of ['vmdk', 'vhdx', 'vdi']) {
        const again = await imageJson<ImportedImage[]>(['import', forms.get(`${name}-${form}`)!]);
        assert.equal(again.exitCode, 0, again.stderr);
        assert.deepEqual([again.json[0]!.sha256, again.json[0]!.deduplicated, again.json[0]!.name], [hashes[name], true, name], form);
      }
      const shown = await imageJson<CatalogImage>(['show', name]);
      assert.deepEqual(
        shown.json.imports.map((i) => i.format),
        ['vmdk', 'vmdk', 'vhdx', 'vdi'],
      );
      assert.ok(storeFiles().includes(`${hashes[name]}.qcow2`));
    });

  it('lists the three systems, one store file each', async () => {
    assert.equal(storeFiles().length, 3);
    const list = await imageJson<CatalogImage[]>(['list']);
    assert.deepEqual(
      list.json.map((i) => i.name),
      ['bios', 'lvm', 'uefi'],
    );
  });

  it('refuses a damaged qcow2, an unknown file and a broken GPT with exit 40, leaving the store unchanged', async () => {
    const before = { files: storeFiles(), list: (await imageJson<CatalogImage[]>(['list'])).json };
    // A qcow2 whose L1 table points past the end of the file.
    const damaged = join(dir, 'damaged.qcow2');
    copyFileSync(forms.get('qcow2')!, damaged);
    const fd = openSync(damaged, 'r+');
    const l1 = Buffer.alloc(8);
    l1.writeBigUInt64BE(0x7fff_ffff_0000n);
    writeSync(fd, l1, 0, 8, 40);
    closeSync(fd);
    const notAnImage = join(dir, 'notes.txt');
    writeFileSync(notAnImage, 'these are not the disks you are looking for\n'.repeat(100));
    // The UEFI disk with its GPT entry array's CRC broken.
    const brokenGpt = join(dir, 'broken-gpt.raw');
    execFileSync('cp', ['--sparse=always', system('uefi-gpt').raw, brokenGpt]);
    const gfd = openSync(brokenGpt, 'r+');
    writeSync(gfd, Buffer.from('garbage!'), 0, 8, 1024 + 56);
    closeSync(gfd);
    for (const [file, reason] of [
      [damaged, 'corrupt'],
      [notAnImage, 'unknown-format'],
      [brokenGpt, 'partition-table'],
    ] as const) {
      const text = await image(['import', file]);
      assert.equal(text.exitCode, 40, `${file}: ${text.stderr}`);
      assert.equal(
        text.stderr
          .trim()
          .split('\n')
          .filter((l) => l.includes('error:')).length,
        1,
        text.stderr,
      );
      const { exitCode, json } = await imageJson<{ error: { reason: string } }>(['import', file]);
      assert.equal(exitCode, 40);
      assert.equal(json.error.reason, reason, file);
    }
    assert.deepEqual(storeFiles(), before.files);
    assert.deepEqual(readdirSync(join(stick.root, 'images', 'incoming')), []);
    assert.deepEqual((await imageJson<CatalogImage[]>(['list'])).json, before.list);
  });

  let facts: Record<string, ImageFacts> = {};

  it('inspects the three systems without booting them: the facts are what the corpus built', async () => {
    facts = {};
    for (const [name, label] of [
      ['bios', 'bios-mbr'],
      ['uefi', 'uefi-gpt'],
      ['lvm', 'bios-lvm'],
    ] as const) {
      const { exitCode, json, stderr } = await imageJson<ImageFacts>(['inspect', name]);
      assert.equal(exitCode, 0, stderr);
      facts[name] = json;
      const built = system(label);
      assert.equal(json.os.family, 'linux');
      assert.equal(json.os.distribution, 'debian');
      assert.equal(json.os.version, '12');
      assert.equal(json.os.codename, 'bookworm');
      assert.equal(json.architecture, 'x86_64');
      assert.equal(json.hostname, built.hostname);
      assert.equal(json.machineId, built.machineId);
      assert.equal(json.firmware, built.firmware);
      assert.equal(json.bootloader, 'grub');
      assert.equal(json.partitionTable.kind, built.table);
      assert.deepEqual(json.kernels, [
        { version: built.kernelVersion, file: `/boot/vmlinuz-${built.kernelVersion}`, initramfs: `/boot/initrd.img-${built.kernelVersion}` },
      ]);
      assert.equal(json.packages?.manager, 'dpkg');
      assert.equal(json.packages?.count, built.packages);
      assert.deepEqual(
        json.users.map((u) => [u.name, u.uid]),
        [
          ['root', 0],
          ['alice', 1000],
        ],
      );
      const root = json.fileSystems.find((f) => f.mountpoint === '/')!;
      assert.equal(root.uuid, built.rootUuid);
      assert.equal(root.type, 'ext4');
      assert.deepEqual(
        json.network.interfaces.filter((i) => i.name !== 'lo').map(({ name, method, address }) => ({ name, method, ...(address ? { address } : {}) })),
        [built.network],
      );
    }
    const uefi = facts['uefi']!;
    const esp = uefi.fileSystems.find((f) => f.esp)!;
    assert.equal(esp.type, 'vfat');
    assert.equal(esp.uuid, system('uefi-gpt').espUuid);
    assert.equal(esp.mountpoint, '/boot/efi');
    assert.ok(uefi.efiFiles.includes('/EFI/BOOT/BOOTX64.EFI'), uefi.efiFiles.join(' '));
    const srv = uefi.fileSystems.find((f) => f.mountpoint === '/srv')!;
    assert.equal(srv.type, 'xfs');
    assert.equal(srv.uuid, system('uefi-gpt').srvUuid);
    assert.equal(uefi.fstab.length, 3);
    assert.equal(facts['bios']!.fileSystems.length, 1);
    // On LVM: the PV's partition, the root in its logical volume (fstab by /dev/mapper name), the kernels on /boot.
    const lvm = facts['lvm']!;
    const built = system('bios-lvm');
    assert.equal(lvm.rootPartition, built.lvm!.partition);
    assert.deepEqual(
      lvm.fileSystems.map((f) => [f.partition, f.volume, f.type, f.uuid, f.mountpoint]),
      [
        [1, null, 'ext4', built.bootUuid, '/boot'],
        [2, null, 'LVM2_member', built.lvm!.pvUuid, null],
        [2, `${built.lvm!.vg}/${built.lvm!.lv}`, 'ext4', built.rootUuid, '/'],
      ],
    );
    assert.equal(lvm.fstab[0]!.spec, `/dev/mapper/${built.lvm!.vg}-${built.lvm!.lv}`);
    // The catalog keeps them.
    const shown = await imageJson<CatalogImage>(['show', 'uefi']);
    assert.equal((shown.json.facts as unknown as ImageFacts).hostname, 'corpus-uefi');
  });

  it('agrees with virt-inspector on the same raw disk', async function () {
    const run = await virtInspector(system('bios-mbr').raw);
    if ('skipped' in run) {
      console.log(`      ${run.skipped}`);
      this.skip();
    }
    const xml = run.xml;
    const tag = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];
    const bios = facts['bios']!;
    assert.equal(tag('name'), bios.os.family);
    assert.equal(tag('distro'), bios.os.distribution);
    assert.equal(tag('arch'), bios.architecture);
    assert.equal(tag('hostname'), bios.hostname);
    assert.equal(tag('major_version'), bios.os.version);
    assert.equal(tag('package_format'), 'deb');
    assert.ok(xml.includes(`<uuid>${system('bios-mbr').rootUuid.replaceAll('-', '')}</uuid>`) || xml.includes(system('bios-mbr').rootUuid), 'the root UUID');
  });

  it('rm refuses an image a guest is made from (exit 42), then removes it and its store file', async () => {
    // A guest record as guests made from catalog images will carry (source kind "image").
    const guestDir = join(stick.root, 'guests', 'from-uefi');
    mkdirSync(guestDir, { recursive: true });
    writeFileSync(join(guestDir, 'guest.json'), JSON.stringify({ format: 1, name: 'from-uefi', source: { kind: 'image', name: 'uefi' } }));
    // A store file that is not where its row says: inspect refuses it (44) rather than hand QEMU nothing.
    const uefiFile = join(stick.root, 'images', 'store', `${hashes['uefi']}.qcow2`);
    renameSync(uefiFile, `${uefiFile}.moved`);
    const gone = await imageJson<{ error: { reason: string } }>(['inspect', 'uefi']);
    assert.equal(gone.exitCode, 44);
    assert.equal(gone.json.error.reason, 'missing');
    renameSync(`${uefiFile}.moved`, uefiFile);
    const refused = await imageJson<{ error: { reason: string; guests: string[] } }>(['rm', 'uefi']);
    assert.equal(refused.exitCode, 42);
    assert.deepEqual(refused.json.error.guests, ['from-uefi']);
    assert.equal(storeFiles().length, 3);
    removeDir(guestDir);
    const removed = await image(['rm', 'uefi']);
    assert.equal(removed.exitCode, 0, removed.stderr);
    assert.deepEqual(storeFiles(), [`${biosHash}.qcow2`, `${hashes['lvm']}.qcow2`].sort());
    const missing = await image(['show', 'uefi']);
    assert.equal(missing.exitCode, 41);
    // A hash prefix names the same image as its name.
    const byHash = await imageJson<CatalogImage>(['show', biosHash.slice(0, 12)]);
    assert.equal(byHash.json.name, 'bios');
    assert.ok(readFileSync(join(stick.root, 'images', 'catalog.sqlite')).length > 0);
  });
});
