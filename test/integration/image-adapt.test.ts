// `launcher image adapt` (docs/adapt.md) on a Debian made for a SATA
// hypervisor (test/images/adapt-image.ts: its own kernel, GRUB in the MBR, an
// initramfs WITHOUT virtio drivers, fstab and root= by /dev/sda1, enp0s3):
// imported into the catalog, it does NOT boot on the stick's QEMU with a
// virtio disk (its initramfs gives up waiting for the root); `--dry-run`
// prints the pre-flight and makes nothing; `image adapt --for pocketvm` makes
// a new image (the source unchanged, the lineage recorded) that boots to the
// marker its userland prints on ttyS0. A bad --for is refused (52). In that
// same boot the image's cloud-init reads a NoCloud seed our exporter wrote
// (`launcher export default --to nocloud`, packed by cloud-localds) from a
// second virtio disk, with two network cards, the seed's MAC second: the
// host name, the user with its shell, locked password, SSH key and sudo rule
// are cloud-init's, and its ifupdown file names the card with the seed's MAC
// (whatever the kernel called it), not the other. One appliance (resumed
// from the state an earlier test file saved: shared-appliance-state.ts; a
// boot when run alone), two guest boots (src/images/boot-check.ts).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { ADAPT_MARKER, adaptImage, CLOUDINIT_DONE, CLOUDINIT_REPORT } from '../images/adapt-image.ts';
import type { CatalogImage } from '../../src/images/image-catalog.ts';
import type { ImportedImage } from '../../src/images/image-import.ts';
import type { AdaptResult } from '../../src/images/image-adapt.ts';
import { bootCheck, type BootCheckOptions, type BootCheckResult } from '../../src/images/boot-check.ts';
import type { GuestDescriptor } from '../../src/export/guest-descriptor.ts';
import { freshStick, launcher, launcherJson, repoRoot } from './harness.ts';

/** What initramfs-tools prints when it finds no root (scripts/local, after max(30 s, rootdelay)). */
const NO_ROOT = ['Gave up waiting for root file system device', 'Dropping to a shell'];
/** The seed's user and key (`launcher export --to nocloud --user --ssh-key`). */
const SEED_USER = 'alice';
const SEED_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@stick';
/** A card the seed does not name, plugged in before the seed's: cloud-init must match by MAC, not take the first card. */
const OTHER_MAC = '52:54:00:c1:0d:01';

describe('launcher image adapt: a Debian without virtio drivers boots on the stick after adapt, not before', function () {
  this.timeout(3_600_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let dir: string;
  let made: ReturnType<typeof adaptImage>;
  const imageJson = <T>(args: string[]) => launcherJson<T>(['image', ...args, '--stick', stick.root], { timeout: 1_800_000 });
  const storeFiles = () => readdirSync(join(stick.root, 'images', 'store')).sort();

  /** Boots a throwaway overlay of the catalog image NAME on a virtio disk until the marker (or what OPTIONS wait for). */
  async function bootImage(name: string, options: BootCheckOptions = {}) {
    const { json } = await imageJson<CatalogImage>(['show', name]);
    const overlay = join(dir, `${name}-boot.qcow2`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', join(stick.root, 'images', 'store', json.file), overlay]);
    return bootCheck(stick.root, overlay, 'bios', join(dir, `${name}-scratch`), 900_000, { until: ADAPT_MARKER, failOn: NO_ROOT, ...options });
  }

  /** The stick's default guest exported as a NoCloud seed (our exporter), packed by cloud-localds as a cidata ISO. */
  async function exportedSeed() {
    const seedDir = join(dir, 'seed');
    const key = join(dir, 'id.pub');
    writeFileSync(key, `${SEED_KEY}\n`);
    const exported = await launcherJson<{ descriptor: GuestDescriptor }>([
      'export',
      'default',
      seedDir,
      '--to',
      'nocloud',
      '--user',
      SEED_USER,
      '--ssh-key',
      key,
      '--stick',
      stick.root,
    ]);
    assert.equal(exported.exitCode, 0, exported.stderr);
    const mac = exported.json.descriptor.nics[0]?.mac;
    assert.ok(mac, 'the default guest has a network card, so its seed matches one by MAC');
    const metaData = readFileSync(join(seedDir, 'meta-data'), 'utf8');
    const iso = join(dir, 'seed.iso');
    const file = (name: string) => join(seedDir, name);
    execFileSync('cloud-localds', ['-N', file('network-config'), iso, file('user-data'), file('meta-data')]);
    return {
      iso,
      mac,
      hostname: JSON.parse(/^local-hostname: (.*)$/m.exec(metaData)![1]!) as string,
      instance: JSON.parse(/^instance-id: (.*)$/m.exec(metaData)![1]!) as string,
    };
  }
  let seed: Awaited<ReturnType<typeof exportedSeed>> | undefined;
  let seeded: BootCheckResult | undefined;

  before(async () => {
    const built = await execa('node', ['build.js', 'payload', '--guest', 'appliance'], { cwd: repoRoot, reject: false, timeout: 1_500_000 });
    assert.equal(built.exitCode, 0, String(built.stderr));
    made = adaptImage((message) => process.stderr.write(`      adapt image: ${message}\n`));
    stick = await freshStick({ savedAppliance: true });
    dir = tempDir('pocketvm-adapt-it-');
    const { exitCode, json, stderr } = await imageJson<ImportedImage[]>(['import', made.raw, '--name', 'sata-only']);
    assert.equal(exitCode, 0, stderr);
    assert.equal(json[0]!.name, 'sata-only');
  });

  after(async () => {
    if (stick) {
      await launcher(['files', 'close', '--all', '--stick', stick.root], { timeout: 300_000 });
      await stick.dispose();
    }
    if (dir) removeDir(dir);
  });

  it('does not boot on a virtio disk before adapt: its initramfs finds no root', async () => {
    await assert.rejects(bootImage('sata-only'), (e: Error & { details?: { reason?: string; serial?: string } }) => {
      assert.equal(e.details?.reason, 'failed-on', `${e.message}\n${e.details?.serial ?? ''}`);
      return true;
    });
  });

  it('refuses an unknown target with exit 52 and makes nothing', async () => {
    const before = storeFiles();
    const { exitCode, stderr } = await launcher(['image', 'adapt', 'sata-only', '--for', 'hyperv', '--stick', stick.root]);
    assert.equal(exitCode, 52, stderr);
    assert.match(stderr, /--for hyperv: not a target/);
    assert.deepEqual(storeFiles(), before);
  });

  it('--dry-run prints the pre-flight and makes nothing', async () => {
    const before = storeFiles();
    const { exitCode, json, stderr } = await imageJson<AdaptResult>(['adapt', 'sata-only', '--for', 'pocketvm', '--dry-run']);
    assert.equal(exitCode, 0, stderr);
    assert.equal(json.dryRun, true);
    assert.equal(json.made, undefined);
    const changed = Object.fromEntries(json.changes.map((c) => [c.step, c]));
    assert.equal(changed.drivers?.change, true, JSON.stringify(json.changes));
    assert.match(changed.drivers!.what, /virtio_blk/);
    assert.match(changed.uuid!.what, /\/dev\/sda1/);
    assert.equal(changed.serial?.change, false, 'the image writes to ttyS0 already');
    assert.match(changed.netnames!.what, /enp0s3 -> eth0/);
    assert.equal(changed.agent?.change, true);
    assert.deepEqual(storeFiles(), before);
  });

  it('adapted for pocketvm, the new image boots to its marker; the source stays and the steps are recorded', async () => {
    const before = storeFiles();
    const { exitCode, json, stderr } = await imageJson<AdaptResult>(['adapt', 'sata-only', '--for', 'pocketvm']);
    assert.equal(exitCode, 0, stderr);
    assert.equal(json.made?.name, 'sata-only-pocketvm');
    assert.deepEqual(json.devices, { disk: 'virtio-blk', nic: 'virtio-net' });
    for (const file of before) assert.ok(storeFiles().includes(file), 'the source image is kept');
    const shown = await imageJson<CatalogImage>(['show', 'sata-only-pocketvm']);
    assert.equal(shown.json.lineage?.parentName, 'sata-only');
    const steps = shown.json.lineage!.steps.join('\n');
    assert.match(steps, /drivers: initramfs .* made again with update-initramfs/);
    assert.match(steps, /installed: .*qemu-guest-agent/);
    // One boot for the marker and the seed (test/images/adapt-image.ts reports what cloud-init did once it has run).
    seed = await exportedSeed();
    seeded = await bootImage('sata-only-pocketvm', {
      until: CLOUDINIT_DONE,
      seedDisk: seed.iso,
      nicMacs: [OTHER_MAC, seed.mac],
      collect: [ADAPT_MARKER, CLOUDINIT_REPORT],
    });
    const marker = seeded.collected!.find((line) => line.startsWith(ADAPT_MARKER));
    assert.ok(marker, `no ${ADAPT_MARKER} before cloud-init's report`);
    const uptime = (line: string) => Number(line.split(' ')[1]);
    process.stderr.write(
      `      adapted image: marker at ${uptime(marker).toFixed(1)} s of guest uptime, cloud-init's report at ${uptime(seeded.banner).toFixed(1)} s; ${(seeded.ms / 1000).toFixed(1)} s from QEMU's start\n`,
    );
  });

  it('in that boot the NoCloud seed our exporter wrote sets the host name, the user with its key and sudo rule, and reaches the card with its MAC', () => {
    assert.ok(seed && seeded?.collected, 'the adapted image booted with the seed (test above)');
    const facts = seeded.collected.filter((line) => line.startsWith(CLOUDINIT_REPORT)).map((line) => line.slice(CLOUDINIT_REPORT.length).split(' '));
    const fact = (key: string) => facts.filter((words) => words[0] === key).map((words) => words.slice(1));
    const report = seeded.collected.join('\n');
    assert.deepEqual(fact('instance'), [[seed.instance]], `cloud-init read another seed than ours:\n${report}`);
    assert.deepEqual(fact('hostname'), [[seed.hostname, seed.hostname]], `the running host name and /etc/hostname:\n${report}`);
    assert.notEqual(seed.hostname, 'sata-only', 'the image had its own host name before');
    assert.deepEqual(fact('user'), [[SEED_USER, '/bin/bash', '!']], `the seed's user, its shell and a locked password:\n${report}`);
    const [type, blob] = SEED_KEY.split(' ');
    assert.deepEqual(fact('key'), [[SEED_USER, type, blob]], report);
    assert.deepEqual(fact('sudo'), [[SEED_USER, 'ALL=(ALL)', 'NOPASSWD:ALL']], report);
    const cards = new Map(fact('nic').map(([name, mac]) => [mac, name]));
    assert.ok(cards.has(seed.mac) && cards.has(OTHER_MAC), `both cards in the guest:\n${report}`);
    assert.deepEqual(fact('eni'), [[cards.get(seed.mac)]], `cloud-init's ifupdown file names the card with the seed's MAC, and only it:\n${report}`);
  });
});
