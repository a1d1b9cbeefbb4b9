// `launcher image inspect` of a Windows image (issue 21): a Windows-like
// disk the test builds with the real tools (test/images/windows-image.ts:
// GPT, an ESP with EFI/Microsoft/Boot/bootmgfw.efi, an NTFS holding the
// SOFTWARE and SYSTEM hives the test writes and hivex reads, and driver
// files) is imported and inspected in the helper appliance; the edition,
// build, hostname and drivers are what the test wrote. A copy with a damaged
// SYSTEM hive is inspected too: everything else is still reported and the
// hive is named as unreadable. virt-inspector, where libguestfs runs here (or
// with POCKETVM_TEST_LIBGUESTFS=payload-kernel, on the payload build's kernel),
// reports the same product name and hostname. One appliance start for the
// file, resumed from the state an earlier test file saved
// (shared-appliance-state.ts; a boot when run alone).
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import type { ImageFacts } from '../../src/images/inspect-report.ts';
import { buildWindowsImage, WINDOWS_EXPECTED } from '../images/windows-image.ts';
import { freshStick, launcher, launcherJson, repoRoot } from './harness.ts';
import { virtInspector } from './virt-inspector.ts';

describe('launcher image inspect: a Windows image read from its registry hives', function () {
  this.timeout(3_600_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let dir: string;
  let disk: string;
  let damaged: string;
  let facts: ImageFacts;
  const imageJson = <T>(args: string[]) => launcherJson<T>(['image', ...args, '--stick', stick.root], { timeout: 1_200_000 });

  before(async () => {
    const built = await execa('node', ['build.js', 'payload', '--guest', 'appliance'], { cwd: repoRoot, reject: false, timeout: 1_500_000 });
    assert.equal(built.exitCode, 0, String(built.stderr));
    dir = tempDir('pocketvm-windows-it-');
    disk = buildWindowsImage(dir);
    damaged = buildWindowsImage(dir, { damaged: true });
    stick = await freshStick({ savedAppliance: true });
  });

  after(async () => {
    if (stick) {
      await launcher(['files', 'close', '--all', '--stick', stick.root], { timeout: 300_000 });
      await stick.dispose();
    }
    if (dir) removeDir(dir);
  });

  it('imports the image and inspects it: edition, build, hostname, drivers and virtio start types as the test wrote them', async () => {
    const imported = await imageJson<unknown>(['import', disk, '--name', 'win']);
    assert.equal(imported.exitCode, 0, imported.stderr);
    const { exitCode, json, stderr } = await imageJson<ImageFacts>(['inspect', 'win']);
    assert.equal(exitCode, 0, stderr);
    facts = json;
    assert.equal(json.os.family, 'windows');
    assert.equal(json.os.name, WINDOWS_EXPECTED.productName);
    assert.equal(json.os.version, WINDOWS_EXPECTED.version);
    assert.equal(json.hostname, WINDOWS_EXPECTED.hostname);
    assert.equal(json.architecture, 'x86_64');
    assert.equal(json.firmware, 'uefi');
    assert.equal(json.bootloader, 'windows-boot-manager');
    assert.ok(json.efiFiles.includes('/EFI/Microsoft/Boot/bootmgfw.efi'), json.efiFiles.join(' '));
    const w = json.windows!;
    assert.deepEqual(w.hives, { software: { status: 'read' }, system: { status: 'read' } });
    assert.equal(w.productName, WINDOWS_EXPECTED.productName);
    assert.equal(w.editionId, WINDOWS_EXPECTED.editionId);
    assert.equal(w.installationType, WINDOWS_EXPECTED.installationType);
    assert.equal(w.build, WINDOWS_EXPECTED.build);
    assert.equal(w.displayVersion, WINDOWS_EXPECTED.displayVersion);
    assert.equal(w.controlSet, WINDOWS_EXPECTED.controlSet);
    assert.equal(w.computerName, WINDOWS_EXPECTED.computerName);
    assert.deepEqual(
      w.drivers.map((d) => [d.name, d.type, d.start, d.imagePath, d.fileFound]),
      WINDOWS_EXPECTED.drivers.map((d) => [d.name, d.type, d.start, d.imagePath, d.file]),
    );
    assert.deepEqual(w.virtio, { viostor: 'boot', vioscsi: 'disabled', netkvm: 'demand' });
    // The catalog keeps the facts, and the human form says them.
    const shown = await launcher(['image', 'show', 'win', '--stick', stick.root], { timeout: 300_000 });
    assert.equal(shown.exitCode, 0, shown.stderr);
    assert.match(shown.stdout, /windows +Windows 10 Pro \(Professional, Client\) build 19045 22H2/);
    assert.match(shown.stdout, /virtio: viostor boot, vioscsi disabled, netkvm demand/);
  });

  it('an image with a damaged SYSTEM hive: everything else is reported and the hive is named as unreadable', async () => {
    const { exitCode, json, stderr } = await imageJson<ImageFacts>(['inspect', damaged]);
    assert.equal(exitCode, 0, stderr);
    assert.equal(json.os.family, 'windows');
    assert.equal(json.firmware, 'uefi');
    assert.equal(json.bootloader, 'windows-boot-manager');
    assert.equal(json.windows?.productName, WINDOWS_EXPECTED.productName);
    assert.equal(json.windows?.hives.software.status, 'read');
    assert.equal(json.windows?.hives.system.status, 'unreadable');
    assert.equal(json.hostname, null);
    assert.deepEqual(json.windows?.drivers, []);
    assert.ok(json.fileSystems.some((f) => f.type === 'ntfs'));
  });

  it('agrees with virt-inspector on the product name and hostname (it reports no drivers)', async function () {
    const run = await virtInspector(disk);
    if ('skipped' in run) {
      console.log(`      ${run.skipped}`);
      this.skip();
    }
    const xml = run.xml;
    const tag = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];
    assert.equal(tag('name'), 'windows');
    assert.equal(tag('product_name'), facts.windows?.productName);
    assert.equal(tag('hostname'), facts.hostname);
    assert.equal(tag('arch'), facts.architecture);
    assert.equal(tag('major_version'), '10');
  });
});
