// The portable QEMU bundle (node build.js qemu): complete by construction,
// runnable with nothing from the host's library folders.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isElf, readElfDynamic } from '../../build/payload/elf-needed.ts';
import { buildLinuxQemuBundle, DEBIAN_QEMU, QEMU_BUNDLE_FILE, type QemuBundleManifest } from '../../build/stick/qemu-bundle.ts';
import { QEMU_BUNDLE_FILE as READ_BY_LAUNCHER } from '../../src/vmm/qemu-binary.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('portable QEMU bundle (linux-x64)', function () {
  this.timeout(120_000);
  let dir: string;
  let manifest: QemuBundleManifest;

  before(async function () {
    if (!existsSync(DEBIAN_QEMU.binaries.system)) this.skip();
    dir = (await buildLinuxQemuBundle({ root })).dir;
    manifest = JSON.parse(await readFile(join(dir, QEMU_BUNDLE_FILE), 'utf8')) as QemuBundleManifest;
  });

  it('is described by the file the launcher reads', () => {
    assert.equal(QEMU_BUNDLE_FILE, READ_BY_LAUNCHER);
    for (const path of [manifest.loader, manifest.binaries.system, manifest.binaries.img, manifest.dataDir, manifest.moduleDir])
      assert.ok(existsSync(join(dir, path)), path);
  });

  it('holds every library any of its ELF files needs, and the loader they ask for', async () => {
    const libs = new Set(await readdir(join(dir, 'lib')));
    const elves = [
      manifest.binaries.system,
      manifest.binaries.img,
      ...(await readdir(join(dir, manifest.moduleDir))).map((m) => `${manifest.moduleDir}/${m}`),
      ...[...libs].filter((l) => l.includes('.so')).map((l) => `lib/${l}`),
    ];
    for (const path of elves) {
      const bytes = await readFile(join(dir, path));
      if (!isElf(bytes)) continue;
      const info = readElfDynamic(bytes);
      for (const needed of info.needed) assert.ok(libs.has(needed), `${path} needs ${needed}`);
      if (info.interpreter) assert.equal(`lib/${info.interpreter.split('/').at(-1)}`, manifest.loader);
    }
  });

  it('has the firmware q35 + -kernel loads', () => {
    for (const name of ['bios-256k.bin', 'kvmvapic.bin', 'linuxboot_dma.bin', 'efi-virtio.rom', 'vgabios-stdvga.bin'])
      assert.ok(existsSync(join(dir, manifest.dataDir, name)), name);
  });

  it('runs through its own loader with an empty environment and no library path from the host', () => {
    const run = (binary: string, args: string[]) =>
      spawnSync(join(dir, manifest.loader), ['--inhibit-cache', '--library-path', join(dir, manifest.libraryPath), join(dir, binary), ...args], {
        encoding: 'utf8',
        env: { QEMU_MODULE_DIR: join(dir, manifest.moduleDir) },
      });
    const version = run(manifest.binaries.system, ['--version']);
    assert.equal(version.status, 0, version.stderr);
    assert.match(version.stdout, /QEMU emulator version/);
    assert.match(run(manifest.binaries.system, ['-accel', 'help']).stdout, /tcg/, 'the TCG module loads from the bundle');
    assert.equal(run(manifest.binaries.img, ['--version']).status, 0);
  });
});
