import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { linuxHost } from '../../src/hostprobe/linux.ts';
import { findQemu, findQemuImg, QEMU_BUNDLE_FILE } from '../../src/vmm/qemu-binary.ts';
import { buildLinuxQemuBundle, DEBIAN_QEMU } from '../../build/stick/qemu-bundle.ts';
import { existsSync } from 'node:fs';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('finding QEMU', () => {
  let stick: string;
  beforeEach(async () => {
    stick = await mkdtemp(join(tmpdir(), 'pocketvm-qemu-'));
  });
  afterEach(() => rm(stick, { recursive: true, force: true }));

  it('a Linux bundle on the stick runs through its own loader, with its data and module folders', async () => {
    const dir = join(stick, '.pocketvm', 'qemu', 'linux-x64');
    await mkdir(join(dir, 'lib'), { recursive: true });
    await writeFile(join(dir, 'lib', 'ld-linux-x86-64.so.2'), '', { mode: 0o755 });
    await writeFile(join(dir, QEMU_BUNDLE_FILE), JSON.stringify({ loader: 'lib/ld-linux-x86-64.so.2', libraryPath: 'lib', binaries: { system: 'bin/qemu-system-x86_64', img: 'bin/qemu-img' }, dataDir: 'share', moduleDir: 'lib/qemu' }));
    const qemu = findQemu(linuxHost, stick, { PATH: '' });
    assert.equal(qemu.source, 'stick');
    assert.equal(qemu.system, join(dir, 'lib', 'ld-linux-x86-64.so.2'));
    assert.deepEqual(qemu.prefixArgs, ['--inhibit-cache', '--library-path', join(dir, 'lib'), join(dir, 'bin', 'qemu-system-x86_64'), '-L', join(dir, 'share')]);
    assert.deepEqual(qemu.env, { QEMU_MODULE_DIR: join(dir, 'lib', 'qemu') });
    const img = findQemuImg(linuxHost, stick, { PATH: '' });
    assert.deepEqual(img.prefixArgs, ['--inhibit-cache', '--library-path', join(dir, 'lib'), join(dir, 'bin', 'qemu-img')]);
  });

  it('a plain bundle (the Windows/macOS shape) is its executable at the top of the folder', async () => {
    const dir = join(stick, '.pocketvm', 'qemu', 'linux-x64');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'qemu-system-x86_64'), '#!/bin/sh\n', { mode: 0o755 });
    assert.deepEqual(findQemu(linuxHost, stick, { PATH: '' }), { system: join(dir, 'qemu-system-x86_64'), source: 'stick' });
  });

  it('without a bundle, falls back to PATH', async function () {
    if (!existsSync('/usr/bin/qemu-system-x86_64')) this.skip();
    assert.equal(findQemu(linuxHost, stick, { PATH: '/usr/bin' }).source, 'path');
  });

  it('the real bundle, copied anywhere, starts qemu-img through what findQemuImg returns', async function () {
    if (!existsSync(DEBIAN_QEMU.binaries.img)) this.skip();
    const built = await buildLinuxQemuBundle({ root });
    await cp(built.dir, join(stick, '.pocketvm', 'qemu', 'linux-x64'), { recursive: true });
    const img = findQemuImg(linuxHost, stick, { PATH: '' });
    const result = spawnSync(img.system, [...(img.prefixArgs ?? []), '--version'], { encoding: 'utf8', env: { ...img.env } });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /qemu-img version/);
  });
});
