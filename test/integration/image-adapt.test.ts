// `launcher image adapt` (docs/adapt.md) on a Debian made for a SATA
// hypervisor (test/images/adapt-image.ts: its own kernel, GRUB in the MBR, an
// initramfs WITHOUT virtio drivers, fstab and root= by /dev/sda1, enp0s3):
// imported into the catalog, it does NOT boot on the stick's QEMU with a
// virtio disk (its initramfs gives up waiting for the root); `--dry-run`
// prints the pre-flight and makes nothing; `image adapt --for pocketvm` makes
// a new image (the source unchanged, the lineage recorded) that boots to the
// marker its userland prints on ttyS0. A bad --for is refused (52). One
// appliance (resumed from the state an earlier test file saved:
// shared-appliance-state.ts; a boot when run alone), two guest boots
// (src/images/boot-check.ts).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { ADAPT_MARKER, adaptImage } from '../images/adapt-image.ts';
import type { CatalogImage } from '../../src/images/image-catalog.ts';
import type { ImportedImage } from '../../src/images/image-import.ts';
import type { AdaptResult } from '../../src/images/image-adapt.ts';
import { bootCheck } from '../../src/images/boot-check.ts';
import { freshStick, launcher, launcherJson, repoRoot } from './harness.ts';

/** What initramfs-tools prints when it finds no root (scripts/local, after max(30 s, rootdelay)). */
const NO_ROOT = ['Gave up waiting for root file system device', 'Dropping to a shell'];

describe('launcher image adapt: a Debian without virtio drivers boots on the stick after adapt, not before', function () {
  this.timeout(3_600_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let dir: string;
  let made: ReturnType<typeof adaptImage>;
  const imageJson = <T>(args: string[]) => launcherJson<T>(['image', ...args, '--stick', stick.root], { timeout: 1_800_000 });
  const storeFiles = () => readdirSync(join(stick.root, 'images', 'store')).sort();

  /** Boots a throwaway overlay of the catalog image NAME on a virtio disk until the marker. */
  async function bootImage(name: string) {
    const { json } = await imageJson<CatalogImage>(['show', name]);
    const overlay = join(dir, `${name}-boot.qcow2`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', join(stick.root, 'images', 'store', json.file), overlay]);
    return bootCheck(stick.root, overlay, 'bios', join(dir, `${name}-scratch`), 900_000, { until: ADAPT_MARKER, failOn: NO_ROOT });
  }

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
    const booted = await bootImage('sata-only-pocketvm');
    assert.match(booted.banner, new RegExp(ADAPT_MARKER));
    process.stderr.write(`      adapted image: marker after ${(booted.ms / 1000).toFixed(1)} s\n`);
  });
});
