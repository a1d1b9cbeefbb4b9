// Test tier: integration (runs QEMU and qemu-img).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { linuxHost } from '../../src/hostprobe/linux.ts';
import { findQemu, findQemuImg, NO_DUMP_PRELOAD, QEMU_BUNDLE_FILE } from '../../src/vmm/qemu-binary.ts';
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
    await writeFile(
      join(dir, QEMU_BUNDLE_FILE),
      JSON.stringify({
        loader: 'lib/ld-linux-x86-64.so.2',
        libraryPath: 'lib',
        binaries: { system: 'bin/qemu-system-x86_64', img: 'bin/qemu-img' },
        dataDir: 'share',
        moduleDir: 'lib/qemu',
      }),
    );
    const qemu = findQemu(linuxHost, stick, { PATH: '' });
    assert.equal(qemu.source, 'stick');
    assert.equal(qemu.system, join(dir, 'lib', 'ld-linux-x86-64.so.2'));
    assert.deepEqual(qemu.prefixArgs, [
      '--inhibit-cache',
      '--library-path',
      join(dir, 'lib'),
      join(dir, 'bin', 'qemu-system-x86_64'),
      '-L',
      join(dir, 'share'),
    ]);
    assert.deepEqual(qemu.env, { QEMU_MODULE_DIR: join(dir, 'lib', 'qemu') });
    const img = findQemuImg(linuxHost, stick, { PATH: '' });
    assert.deepEqual(img.prefixArgs, ['--inhibit-cache', '--library-path', join(dir, 'lib'), join(dir, 'bin', 'qemu-img')]);
  });

  it('a plain bundle (the Windows/macOS shape) is its executable at the top of the folder', async () => {
    const dir = join(stick, '.pocketvm', 'qemu', 'linux-x64');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'qemu-system-x86_64'), '#!/bin/sh\n', { mode: 0o755 });
    const found = findQemu(linuxHost, stick, { PATH: '' });
    assert.deepEqual([found.system, found.source], [join(dir, 'qemu-system-x86_64'), 'stick']);
  });

  it('a bundle whose manifest names a preload: --preload before the library path; none: a one-line notice, QEMU still found', async () => {
    const dir = join(stick, '.pocketvm', 'qemu', 'linux-x64');
    await mkdir(join(dir, 'lib'), { recursive: true });
    await writeFile(join(dir, 'lib', 'ld-linux-x86-64.so.2'), '', { mode: 0o755 });
    const manifest = {
      loader: 'lib/ld-linux-x86-64.so.2',
      libraryPath: 'lib',
      binaries: { system: 'bin/qemu-system-x86_64', img: 'bin/qemu-img' },
      dataDir: 'share',
      moduleDir: 'lib/qemu',
      preload: `lib/${NO_DUMP_PRELOAD}`,
    };
    await writeFile(join(dir, QEMU_BUNDLE_FILE), JSON.stringify(manifest));
    const missing = findQemu(linuxHost, stick, { PATH: '' });
    assert.equal(missing.notDumpable, false);
    assert.match(missing.notice!, /^QEMU runs dumpable: .*pocketvm-no-dump\.so is missing/);
    assert.doesNotMatch(missing.notice!, /\n/);
    assert.ok(!missing.prefixArgs!.includes('--preload'));
    await writeFile(join(dir, 'lib', NO_DUMP_PRELOAD), '');
    const present = findQemu(linuxHost, stick, { PATH: '' });
    assert.equal(present.notDumpable, true);
    assert.equal(present.notice, undefined);
    assert.deepEqual(present.prefixArgs!.slice(0, 3), ['--inhibit-cache', '--preload', join(dir, 'lib', NO_DUMP_PRELOAD)]);
  });

  it("a host QEMU from a checkout: LD_PRELOAD of the checkout's preload, or a notice when it is not built", async function () {
    if (!existsSync('/usr/bin/qemu-system-x86_64')) this.skip();
    const none = findQemu(linuxHost, stick, { PATH: '/usr/bin' }, stick);
    assert.equal(none.env?.['LD_PRELOAD'], undefined);
    assert.match(none.notice!, /^QEMU runs dumpable: .*node build\.js test/);
    const preload = join(stick, '.cache', 'host', 'linux-x64', NO_DUMP_PRELOAD);
    await mkdir(join(preload, '..'), { recursive: true });
    await writeFile(preload, '');
    const found = findQemu(linuxHost, stick, { PATH: '/usr/bin' }, stick);
    assert.deepEqual([found.notDumpable, found.env?.['LD_PRELOAD'], found.notice], [true, preload, undefined]);
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
