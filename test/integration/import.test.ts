// `launcher import` (docs/import.md) of what `launcher export` writes and of
// a Debian packaged as an OVA by the exporter's own writers:
//   - console-image exported to a VirtualBox OVA and to libvirt, QEMU and
//     Proxmox folders comes back with --no-adapt: the same content each time
//     (the store keeps one file), what each descriptor said (memory, CPUs,
//     MACs) recorded with the image;
//   - a missing SOURCE is exit 59 and a descriptor naming a missing disk exit
//     60, nothing imported;
//   - the adapt test's Debian (test/images/adapt-image.ts: its own kernel,
//     GRUB, an initramfs without virtio) as a VirtualBox OVA: `launcher import
//     --guest deb` imports it, adapts it for pocketvm (the pre-flight in its
//     result), inspects it and makes the guest through guest create --from;
//     the adapted image boots on a virtio disk to the Debian's marker.
// One appliance on each stick, each resumed from the state an earlier test
// file saved (shared-appliance-state.ts), one guest boot (the Debian part on a default stick: a
// catalog-image guest boots on the default payload's kernel).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { ADAPT_MARKER, adaptImage } from '../images/adapt-image.ts';
import type { GuestDescriptor } from '../../src/export/guest-descriptor.ts';
import type { ImportResult } from '../../src/export/import-machine.ts';
import { ovfManifest, writeOva } from '../../src/export/ova-package.ts';
import { ovfDescriptor } from '../../src/export/ovf-descriptor.ts';
import type { CatalogImage } from '../../src/images/image-catalog.ts';
import { bootCheck } from '../../src/images/boot-check.ts';
import { launcher, launcherJson, repoRoot } from './harness.ts';
import { seedApplianceState } from './shared-appliance-state.ts';

const GUEST = 'console-image';

/** The Debian as an OVA the way `launcher export --to ova --flavour virtualbox` packs one: streamOptimized vmdk, OVF, manifest. */
async function debianOva(raw: string, dir: string): Promise<string> {
  const vmdk = join(dir, 'deb-system.vmdk');
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);
  const descriptor = {
    name: 'deb',
    cpus: 2,
    memoryMiB: 1024,
    nics: [{ model: 'virtio-net', mac: '52:54:00:aa:bb:01', network: 'user' }],
  } as unknown as GuestDescriptor;
  const ovf = {
    name: 'deb.ovf',
    data: Buffer.from(
      ovfDescriptor(descriptor, [{ file: 'deb-system.vmdk', fileBytes: statSync(vmdk).size, capacityBytes: statSync(raw).size }], 'virtualbox'),
    ),
  };
  const disk = { name: 'deb-system.vmdk', data: { path: vmdk } };
  const file = join(dir, 'deb.ova');
  await writeOva(file, [ovf, { name: 'deb.mf', data: await ovfManifest([ovf, disk]) }, disk]);
  await rm(vmdk);
  return file;
}

describe('launcher import: exports back onto the stick through image import, adapt and guest create --from', function () {
  this.timeout(3_600_000);
  let dir: string;
  let stick: string;
  const importJson = (args: string[]) =>
    launcherJson<ImportResult & { error?: { code: number; reason: string } }>(['import', ...args, '--stick', stick], { timeout: 2_400_000 });
  const storeFiles = () => readdirSync(join(stick, 'images', 'store')).sort();

  before(async () => {
    dir = tempDir('pocketvm-import-it-');
    stick = join(dir, 'stick');
    const made = await launcher(['init-stick', stick, '--guest', GUEST]);
    assert.equal(made.exitCode, 0, made.stderr);
    await seedApplianceState(stick);
  });

  after(async () => {
    if (stick) await launcher(['files', 'close', '--all', '--stick', stick], { timeout: 300_000 });
    if (dir) removeDir(dir);
  });

  it('takes back an OVA and the libvirt, QEMU and Proxmox folders launcher export wrote: one stored content, each descriptor recorded', async () => {
    const exports = { ova: join(dir, 'vbox.ova'), libvirt: join(dir, 'libvirt'), qemu: join(dir, 'qemu'), proxmox: join(dir, 'proxmox') };
    for (const [to, dest] of Object.entries(exports)) {
      const args = ['export', GUEST, dest, '--to', to, '--stick', stick, ...(to === 'ova' ? ['--flavour', 'virtualbox'] : [])];
      const result = await launcher(args, { timeout: 600_000 });
      assert.equal(result.exitCode, 0, result.stderr);
    }
    const described = JSON.parse(readFileSync(join(exports.qemu, 'descriptor.json'), 'utf8')) as GuestDescriptor;
    const hashes = new Set<string>();
    for (const [kind, source] of Object.entries(exports)) {
      const { exitCode, json, stderr } = await importJson([source, '--no-adapt', '--name', `back-${kind}`]);
      assert.equal(exitCode, 0, stderr);
      assert.equal(json.kind, kind);
      assert.deepEqual(json.adapt, { skipped: '--no-adapt' });
      assert.equal(json.machine.memoryMiB, described.memoryMiB, kind);
      assert.equal(json.machine.cpus, described.cpus, kind);
      assert.deepEqual(
        json.machine.nics.map((nic) => nic.mac),
        described.nics.map((nic) => nic.mac),
        kind,
      );
      hashes.add(json.imported[0]!.sha256);
    }
    assert.equal(hashes.size, 1, 'every form carried the same system disk');
    assert.equal(storeFiles().length, 1, 'the store keeps that content once');
    const shown = await launcherJson<CatalogImage>(['image', 'show', 'back-ova', '--stick', stick]);
    assert.deepEqual(
      shown.json.described?.map((d) => d.descriptor.kind),
      ['ova', 'libvirt', 'qemu', 'proxmox'],
    );
    assert.equal(shown.json.described?.[0]?.descriptor.machine, 'virtualbox-2.2');
  });

  it('refuses a missing source (59) and a descriptor naming a missing disk (60), importing nothing', async () => {
    const before = storeFiles();
    const missing = await importJson([join(dir, 'nothing-here.ova'), '--no-adapt']);
    assert.equal(missing.exitCode, 59, missing.stderr);
    assert.equal(missing.json.error?.reason, 'no-source');
    const broken = join(dir, 'broken');
    await mkdir(broken);
    await writeFile(join(broken, 'run.sh'), '#!/bin/sh\nqemu-system-x86_64 -m 256 -drive file=gone.qcow2,if=virtio\n');
    const gone = await importJson([broken, '--no-adapt']);
    assert.equal(gone.exitCode, 60, gone.stderr);
    assert.equal(gone.json.error?.reason, 'missing-disk');
    assert.deepEqual(storeFiles(), before);
  });

  it('imports a Debian OVA, adapts it for pocketvm, makes a guest of it, and the adapted image boots to its marker', async () => {
    const built = await execa('node', ['build.js', 'payload', '--guest', 'appliance'], { cwd: repoRoot, reject: false, timeout: 1_500_000 });
    assert.equal(built.exitCode, 0, String(built.stderr));
    const image = adaptImage((message) => process.stderr.write(`      adapt image: ${message}\n`));
    const ova = await debianOva(image.raw, dir);
    // A default stick: a guest from a catalog image boots on the default payload's kernel, which the console-image stick lacks.
    stick = join(dir, 'default-stick');
    const made = await launcher(['init-stick', stick]);
    assert.equal(made.exitCode, 0, made.stderr);
    await seedApplianceState(stick);
    const started = performance.now();
    const { exitCode, json, stderr } = await importJson([ova, '--guest', 'deb', '--no-agent']);
    assert.equal(exitCode, 0, stderr);
    process.stderr.write(`      import + adapt + inspect + guest create: ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    assert.equal(json.imported[0]!.name, 'deb');
    assert.deepEqual(json.machine.nics, [{ mac: '52:54:00:aa:bb:01', model: 'E1000' }]);
    assert.ok(!('skipped' in json.adapt), 'adapted');
    const changed = Object.fromEntries(json.adapt.changes.map((c) => [c.step, c]));
    assert.equal(changed.drivers?.change, true, 'the pre-flight says the virtio drivers go in');
    assert.equal(json.image, 'deb-pocketvm');
    assert.equal(json.guest, 'deb');
    const record = JSON.parse(readFileSync(join(stick, 'guests', 'deb', 'guest.json'), 'utf8')) as { source: { kind: string; name: string } };
    assert.equal(record.source.kind, 'image');
    const shown = await launcherJson<CatalogImage>(['image', 'show', 'deb-pocketvm', '--stick', stick]);
    assert.equal(shown.json.lineage?.parentName, 'deb');
    const overlay = join(dir, 'deb-boot.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', join(stick, 'images', 'store', shown.json.file), overlay]);
    const booted = await bootCheck(stick, overlay, 'bios', join(dir, 'deb-scratch'), 900_000, { until: ADAPT_MARKER });
    assert.match(booted.banner, new RegExp(ADAPT_MARKER));
    process.stderr.write(`      imported Debian: marker after ${(booted.ms / 1000).toFixed(1)} s\n`);
    assert.ok(existsSync(overlay));
  });
});
