// `launcher import` (docs/import.md) of what `launcher export` writes, of
// a Debian packaged as an OVA by the exporter's own writers, and of what
// virt-v2v made of that OVA:
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
//     the adapted image boots on a virtio disk to the Debian's marker;
//   - that guest (made from a catalog image) exported back out with
//     `launcher export --to libvirt` and `--to ova`: no kernel beside the disk,
//     the XML boots from disk by BIOS on virtio (adapted for pocketvm),
//     passes virt-xml-validate and boots under a libvirt session daemon the
//     test starts to the Debian's marker; the OVF says SATA and e1000 (VMware
//     offers no virtio), and both disks are the image's store file (qemu-img compare);
//   - the same OVA converted by virt-v2v, an independent consumer (`-i ova
//     OVA -o local -os DIR`, a full conversion: libguestfs's appliance on
//     the payload build's kernel, cached under .cache/libguestfs by
//     bench/libguestfs-kernel.ts), and its -o local folder (domain XML and
//     raw disk) imported by `launcher import DIR`: it boots to the marker.
//     The conversion (libguestfs's appliance built on a fresh machine, then
//     minutes under TCG) starts as soon as the OVA exists, beside the
//     Debian import's adapt: each runs one TCG vCPU, and the machine has two
//     cores. Where virt-v2v cannot run, the test fails and says why.
// One appliance on each stick, each resumed from the state an earlier test
// file saved (shared-appliance-state.ts), two guest boots on the stick (the
// Debian parts on a default stick: a catalog-image guest boots on the default
// payload's kernel) and one under libvirt (the Debian guest's export).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { type ResultPromise, execa } from 'execa';
import { sharedLibguestfs } from '../../bench/libguestfs-kernel.ts';
import { seedApplianceState } from './shared-appliance-state.ts';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { ADAPT_MARKER, type AdaptImage, adaptImage } from '../images/adapt-image.ts';
import type { GuestDescriptor } from '../../src/export/guest-descriptor.ts';
import type { ExportResult } from '../../src/export/export-guest.ts';
import type { ImportResult } from '../../src/export/import-machine.ts';
import { ovfManifest, writeOva } from '../../src/export/ova-package.ts';
import { ovfDescriptor } from '../../src/export/ovf-descriptor.ts';
import { platformOf } from '../../src/guests/guest-launch.ts';
import type { GuestRecord } from '../../src/guests/guest-store.ts';
import type { CatalogImage } from '../../src/images/image-catalog.ts';
import { bootCheck } from '../../src/images/boot-check.ts';
import { loadManifest } from '../../src/payload/guest-manifest.ts';
import { planMachine } from '../../src/session/launch/plan-machine.ts';
import { withPlatform } from '../../src/session/launch/prepare-stick.ts';
import { stickLayout } from '../../src/stick/layout.ts';
import { buildQemuArgs } from '../../src/vmm/qemu-args.ts';
import { launcher, launcherJson, repoRoot, waitUntil } from './harness.ts';
import { startLibvirtd } from './libvirt-session.ts';

const GUEST = 'console-image';

/** The Debian as an OVA the way `launcher export --to ova --flavour virtualbox` packs one: streamOptimized vmdk, OVF, manifest. */
async function debianOva(raw: string, dir: string): Promise<string> {
  const vmdk = join(dir, 'deb-system.vmdk');
  await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);
  const descriptor = {
    name: 'deb',
    cpus: 2,
    memoryMiB: 1024,
    nics: [{ model: 'virtio-net', mac: '52:54:00:aa:bb:01', network: 'user' }],
    // Its own GRUB by BIOS; no drives recorded: VirtualBox's own SATA and e1000, as its image was made for.
    firmware: 'bios',
    boot: { from: 'disk', bootloader: 'grub' },
    facts: { os: 'linux' },
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

/** What virt-v2v made of the Debian OVA, or why it could not: the test asserts on it, so a missing virt-v2v fails rather than skips. */
interface Conversion {
  out?: string;
  error?: string;
  seconds: number;
  applianceCached: boolean;
  load: string;
}

const loadNow = () => loadavg()[0]!.toFixed(1);

describe('launcher import: exports back onto the stick through image import, adapt and guest create --from', function () {
  this.timeout(3_600_000);
  let dir: string;
  let stick: string;
  let debianStick: Promise<string> | undefined;
  let debian: Promise<{ image: AdaptImage; ova: string }> | undefined;
  let debianGuest: Promise<{ on: string; json: ImportResult }> | undefined;
  let conversion: Promise<Conversion> | undefined;
  let converting: ResultPromise | undefined;
  let stopConverting = false;
  const importJson = (args: string[], on = stick) =>
    launcherJson<ImportResult & { error?: { code: number; reason: string } }>(['import', ...args, '--stick', on], { timeout: 2_400_000 });
  const storeFiles = () => readdirSync(join(stick, 'images', 'store')).sort();

  /** The adapt test's Debian (cached image) and the VirtualBox OVA the exporter's writers make of it, once. */
  const debianOvaOnce = () =>
    (debian ??= (async () => {
      const image = adaptImage((message) => process.stderr.write(`      adapt image: ${message}\n`));
      return { image, ova: await debianOva(image.raw, dir) };
    })());

  /** A default stick with the appliance payload built (adapt and inspect start it), once for the Debian parts. */
  const defaultStickOnce = () =>
    (debianStick ??= (async () => {
      const built = await execa('node', ['build.js', 'payload', '--guest', 'appliance'], { cwd: repoRoot, reject: false, timeout: 1_500_000 });
      assert.equal(built.exitCode, 0, String(built.stderr));
      const made = join(dir, 'default-stick');
      const result = await launcher(['init-stick', made]);
      assert.equal(result.exitCode, 0, result.stderr);
      await seedApplianceState(made);
      return made;
    })());

  /** `virt-v2v -i ova OVA -o local -os DIR` on the Debian OVA; never rejects (the test reports the failure). */
  const convertWithVirtV2v = async (): Promise<Conversion> => {
    let started = performance.now();
    let load = loadNow();
    let applianceCached = false;
    try {
      const { ova } = await debianOvaOnce();
      const guestfs = await sharedLibguestfs(repoRoot);
      applianceCached = guestfs.applianceCached;
      const out = join(dir, 'v2v');
      await mkdir(out);
      if (stopConverting) return { error: 'stopped: the tests ended first', seconds: 0, applianceCached, load };
      started = performance.now();
      load = loadNow();
      const [command, ...args] = guestfs.wrap(['virt-v2v', '-i', 'ova', ova, '-o', 'local', '-os', out]);
      converting = execa(command!, args, { reject: false, all: true, env: guestfs.env, timeout: 2_400_000 });
      const run = await converting;
      const seconds = (performance.now() - started) / 1000;
      if (run.exitCode !== 0) {
        const why = String(run.all).trim().split('\n').slice(-6).join('\n');
        return { error: `virt-v2v exited ${run.exitCode ?? run.signal} after ${seconds.toFixed(0)} s:\n${why}`, seconds, applianceCached, load };
      }
      return { out, seconds, applianceCached, load: `${load}-${loadNow()}` };
    } catch (error) {
      return { error: (error as Error).message, seconds: (performance.now() - started) / 1000, applianceCached, load };
    }
  };

  before(async () => {
    dir = tempDir('pocketvm-import-it-');
    stick = join(dir, 'stick');
    const made = await launcher(['init-stick', stick, '--guest', GUEST]);
    assert.equal(made.exitCode, 0, made.stderr);
    await seedApplianceState(stick);
  });

  after(async () => {
    stopConverting = true;
    converting?.kill();
    await conversion;
    if (stick) await launcher(['files', 'close', '--all', '--stick', stick], { timeout: 300_000 });
    const debianOn = await debianStick?.catch(() => undefined);
    if (debianOn) await launcher(['files', 'close', '--all', '--stick', debianOn], { timeout: 300_000 });
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

  /** `launcher import --guest deb` of the Debian OVA on the default stick, once (the export test below takes the guest it makes). */
  const debianGuestOnce = () =>
    (debianGuest ??= (async () => {
      // A default stick: a guest from a catalog image boots on the default payload's kernel, which the console-image stick lacks.
      const on = await defaultStickOnce();
      const { ova } = await debianOvaOnce();
      // virt-v2v's conversion of the same OVA (a test below) runs meanwhile: it and this adapt each keep one core busy.
      conversion ??= convertWithVirtV2v();
      const started = performance.now();
      const imported = await importJson([ova, '--guest', 'deb', '--no-agent'], on);
      assert.equal(imported.exitCode, 0, imported.stderr);
      process.stderr.write(`      import + adapt + inspect + guest create: ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
      return { on, json: imported.json };
    })());

  it('imports a Debian OVA, adapts it for pocketvm, makes a guest of it, and the adapted image boots to its marker', async () => {
    const { on, json } = await debianGuestOnce();
    assert.equal(json.imported[0]!.name, 'deb');
    assert.deepEqual(json.machine.nics, [{ mac: '52:54:00:aa:bb:01', model: 'E1000' }]);
    assert.ok(!('skipped' in json.adapt), 'adapted');
    const changed = Object.fromEntries(json.adapt.changes.map((c) => [c.step, c]));
    assert.equal(changed.drivers?.change, true, 'the pre-flight says the virtio drivers go in');
    assert.equal(json.image, 'deb-pocketvm');
    assert.equal(json.guest, 'deb');
    const record = JSON.parse(readFileSync(join(on, 'guests', 'deb', 'guest.json'), 'utf8')) as GuestRecord;
    assert.equal(record.source.kind, 'image');
    // The guest has the machine the OVA described, and says so (guest.json, the import's --json).
    assert.equal(record.config.memoryMiB, 1024);
    assert.equal(record.config.cpus, 2);
    assert.equal(record.config.network, 'user');
    assert.equal(record.config.mac, '52:54:00:aa:bb:01');
    assert.deepEqual(json.fromDescriptor, record.fromDescriptor);
    assert.deepEqual(
      json.fromDescriptor?.taken.map((t) => `${t.property} ${t.value}`),
      ['memory 1024', 'cpus 2', 'network user', 'mac 52:54:00:aa:bb:01'],
    );
    // The boot below is of the store file, not through the guest: its QEMU command line is checked instead, planned from
    // the guest's configuration as a launch plans it (platform over the default payload's manifest, then the machine).
    const platform = platformOf(record.config);
    const manifest = withPlatform(await loadManifest(join(stickLayout(on).payloadRoot, 'default')), platform);
    const { spec } = planMachine({
      guest: 'deb',
      hostOs: 'linux',
      payload: { manifest, kernel: 'vmlinuz', initrd: 'initrd.img' },
      accelerators: { candidates: ['tcg'], notes: [] },
      sizing: { memoryMiB: manifest.memory.recommendedMiB, cpus: manifest.cpus.recommended },
      features: [],
      ...(platform.mac ? { networkMac: platform.mac } : {}),
    });
    const args = buildQemuArgs({ ...spec, accelerator: 'tcg' });
    assert.equal(args[args.indexOf('-m') + 1], '1024M');
    assert.equal(args[args.indexOf('-smp') + 1], '2');
    assert.ok(args.includes('virtio-net-pci,netdev=net0,id=net0-dev,mac=52:54:00:aa:bb:01,romfile='), args.join(' '));
    assert.match(spec.cmdline, /pocketvm\.net=52:54:00:aa:bb:01/);
    const shown = await launcherJson<CatalogImage>(['image', 'show', 'deb-pocketvm', '--stick', on]);
    assert.equal(shown.json.lineage?.parentName, 'deb');
    const booted = await bootToMarker(on, shown.json.file, 'deb');
    process.stderr.write(`      imported Debian: marker after ${(booted.ms / 1000).toFixed(1)} s\n`);
  });

  it('exports the Debian guest back out (made from a catalog image): libvirt and OVA disks are its image, booting by its own GRUB', async () => {
    const { on } = await debianGuestOnce();
    const shown = await launcherJson<CatalogImage>(['image', 'show', 'deb-pocketvm', '--stick', on]);
    const store = join(on, 'images', 'store', shown.json.file);
    const exportJson = (args: string[]) => launcherJson<ExportResult>(['export', 'deb', ...args, '--stick', on], { timeout: 900_000 });
    const out = join(dir, 'deb-export');
    let started = performance.now();
    const libvirt = await exportJson(['--to', 'libvirt', out, '--domain-type', 'qemu']);
    assert.equal(libvirt.exitCode, 0, libvirt.stderr);
    const libvirtSeconds = (performance.now() - started) / 1000;
    // No kernel beside the disk: the image's own GRUB boots it, by BIOS (an MBR), on virtio (adapted for pocketvm).
    assert.deepEqual([...libvirt.json.files].sort(), ['deb-system.qcow2', 'deb.xml', 'descriptor.json']);
    assert.equal(libvirt.json.descriptor.kind, 'catalog-image');
    assert.deepEqual(libvirt.json.descriptor.boot, { from: 'disk', bootloader: 'grub' });
    const parts = libvirt.json.losses.map((loss) => loss.part);
    assert.ok(parts.includes('boot') && parts.includes('user-changes') && !parts.includes('devices-chosen'), parts.join(', '));
    const xml = join(out, 'deb.xml');
    const text = readFileSync(xml, 'utf8');
    assert.match(text, /<os>\s*<type arch='x86_64' machine='q35'>hvm<\/type>\s*<boot dev='hd'\/>\s*<\/os>/);
    assert.doesNotMatch(text, /<kernel>|firmware='efi'/);
    assert.match(text, /<target dev='vda' bus='virtio'\/>/);
    assert.match(text, /<model type='virtio'\/>/);
    const validated = await execa('virt-xml-validate', [xml, 'domain'], { reject: false, all: true });
    assert.equal(validated.exitCode, 0, validated.all);
    // The store file as is, without --user: the same guest-visible disk.
    const same = await execa('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', store, join(out, 'deb-system.qcow2')], { reject: false, all: true });
    assert.equal(same.exitCode, 0, same.all);
    const bootSeconds = await bootUnderLibvirt(xml, join(out, 'deb.console.log'));

    started = performance.now();
    const ova = join(dir, 'deb-export.ova');
    const packed = await exportJson(['--to', 'ova', ova, '--flavour', 'vmware']);
    assert.equal(packed.exitCode, 0, packed.stderr);
    const ovaSeconds = (performance.now() - started) / 1000;
    // VMware has no virtio disk: the emulated SATA and e1000 every Linux drives, and the report says so.
    assert.ok(
      packed.json.losses.some((loss) => loss.part === 'devices-chosen'),
      packed.json.losses.map((l) => l.part).join(', '),
    );
    const members = join(dir, 'deb-ova');
    await mkdir(members);
    await execa('tar', ['-xf', ova, '-C', members]);
    const ovf = readFileSync(join(members, 'deb.ovf'), 'utf8');
    assert.match(ovf, /<rasd:ResourceSubType>AHCI<\/rasd:ResourceSubType>/);
    assert.match(ovf, /<rasd:ResourceSubType>E1000<\/rasd:ResourceSubType>/);
    assert.doesNotMatch(ovf, /vmw:value="efi"/);
    const vmdk = await execa('qemu-img', ['compare', '-f', 'qcow2', '-F', 'vmdk', store, join(members, 'deb-system.vmdk')], { reject: false, all: true });
    assert.equal(vmdk.exitCode, 0, vmdk.all);
    await rm(members, { recursive: true, force: true });
    process.stderr.write(
      `      export of the Debian guest: libvirt ${libvirtSeconds.toFixed(1)} s, its boot under libvirtd ${bootSeconds.toFixed(1)} s, ova ${ovaSeconds.toFixed(1)} s (load ${loadNow()})\n`,
    );
  });

  it('virt-v2v converts the same OVA (-i ova -o local), and launcher import of its folder boots to the marker', async () => {
    // Started by the Debian import above (or here, when this test runs alone); a virt-v2v that cannot run fails the test.
    conversion ??= convertWithVirtV2v();
    const converted = await conversion;
    process.stderr.write(
      `      virt-v2v -i ova -o local: ${converted.seconds.toFixed(1)} s (appliance ${converted.applianceCached ? 'cached' : 'built first'}, load ${converted.load})\n`,
    );
    assert.ok(converted.out, `virt-v2v could not convert the OVA (it and nbdkit, libnbd-bin are in .ci/run's packages): ${converted.error}`);
    const written = readdirSync(converted.out).sort();
    assert.ok(written.includes('deb.xml'), written.join(', '));
    const on = await defaultStickOnce();
    const started = performance.now();
    const { exitCode, json, stderr } = await importJson([converted.out, '--name', 'deb-v2v', '--no-agent'], on);
    assert.equal(exitCode, 0, stderr);
    process.stderr.write(`      import + adapt of virt-v2v's folder: ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    assert.equal(json.kind, 'libvirt');
    assert.equal(json.machine.name, 'deb');
    assert.equal(json.machine.memoryMiB, 1024);
    assert.equal(json.machine.cpus, 2);
    assert.deepEqual(json.machine.diskBuses, ['virtio']);
    assert.deepEqual(
      json.machine.nics.map((nic) => nic.mac),
      ['52:54:00:aa:bb:01'],
    );
    const shown = await launcherJson<CatalogImage>(['image', 'show', json.image, '--stick', on]);
    const booted = await bootToMarker(on, shown.json.file, 'deb-v2v');
    process.stderr.write(`      virt-v2v's Debian: marker after ${(booted.ms / 1000).toFixed(1)} s\n`);
  });

  /** Defines and starts an exported domain under a libvirt session daemon of this test's (TCG) until the Debian's marker is in its console log; seconds from start. */
  async function bootUnderLibvirt(xml: string, log: string): Promise<number> {
    // The session's QEMU runs as the daemon's user (nobody when run as root): it reads the disk and writes the log there.
    if (process.getuid?.() === 0) await execa('chown', ['-R', '65534:65534', dirname(xml)]);
    await chmod(dir, 0o755);
    const home = await mkdtemp('/tmp/pvl');
    const libvirt = await startLibvirtd(home);
    try {
      await libvirt.virsh('define', xml);
      const started = performance.now();
      await libvirt.virsh('start', 'deb');
      const booted = await waitUntil(() => existsSync(log) && readFileSync(log, 'utf8').includes(ADAPT_MARKER), 600_000, 1000);
      assert.ok(booted, `no ${ADAPT_MARKER} in ${log}: ${existsSync(log) ? readFileSync(log, 'utf8').slice(-1500) : 'no log'}`);
      await libvirt.virsh('destroy', 'deb');
      await libvirt.virsh('undefine', 'deb');
      return (performance.now() - started) / 1000;
    } finally {
      await libvirt.stop();
      await rm(home, { recursive: true, force: true });
    }
  }

  /** Boots a stored image (through a throwaway overlay) on a virtio disk until the Debian's marker. */
  async function bootToMarker(on: string, storeFile: string, name: string) {
    const overlay = join(dir, `${name}-boot.qcow2`);
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', join(on, 'images', 'store', storeFile), overlay]);
    const booted = await bootCheck(on, overlay, 'bios', join(dir, `${name}-scratch`), 900_000, { until: ADAPT_MARKER });
    assert.match(booted.banner, new RegExp(ADAPT_MARKER));
    return booted;
  }
});
