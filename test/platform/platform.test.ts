// The per-OS records of src/platform/ and the choice between them. Windows and
// macOS cannot run here; their records are built and checked as data, and the
// modules that ask them are called with those platforms named.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { keychainAbsentReason } from '../../src/auth/keychain.ts';
import { binFolder, currentPlatform, platformOf } from '../../src/platform/current.ts';
import { darwinPlatform } from '../../src/platform/darwin.ts';
import type { HostPlatform } from '../../src/platform/host-platform.ts';
import { linuxPlatform } from '../../src/platform/linux.ts';
import { windowsPlatform } from '../../src/platform/windows.ts';
import { disableCoreDumps } from '../../src/runtime/no-core-dumps.ts';
import { forbidDumps } from '../../src/runtime/not-dumpable.ts';
import { GuestRamFile } from '../../src/vmm/guest-ram.ts';

describe('platform: one record per OS, chosen once', () => {
  it("this host (Linux) gets the Linux record; Node's names choose the others", () => {
    assert.equal(currentPlatform(), linuxPlatform);
    assert.equal(platformOf('win32'), windowsPlatform);
    assert.equal(platformOf('darwin'), darwinPlatform);
    assert.equal(platformOf('freebsd'), undefined);
    assert.equal(binFolder(), `linux-${process.arch}`);
  });

  it('each record names its own OS and Node platform, and only Linux has the kernel interfaces', () => {
    const records: HostPlatform[] = [linuxPlatform, windowsPlatform, darwinPlatform];
    assert.deepEqual(
      records.map((p) => [p.os, p.nodePlatform, p.executableSuffix]),
      [
        ['linux', 'linux', ''],
        ['windows', 'win32', '.exe'],
        ['darwin', 'darwin', ''],
      ],
    );
    const linuxOnly = [
      'procCoreDumpControls',
      'qemuNoDumpPreload',
      'keychainNeedsSessionBus',
      'statfsPseudoFileSystems',
      'sysfsBlockDevices',
      'procMountinfo',
      'procSelfFd',
      'hardLinksSymlinks',
      'guestRamInDevShm',
    ] as const;
    for (const key of linuxOnly)
      assert.deepEqual(
        records.map((p) => p[key]),
        [true, false, false],
        key,
      );
    assert.deepEqual(
      records.map((p) => p.windowsFileSystem),
      [false, true, false],
    );
    assert.deepEqual(
      records.map((p) => p.shareFileManager),
      ['gnome-files', 'explorer', 'finder'],
    );
    assert.deepEqual(
      records.map((p) => p.dumpGuard),
      ['prctl', 'none', 'setrlimit'],
    );
    assert.deepEqual(
      records.map((p) => p.caseInsensitivePaths),
      [false, true, true],
    );
  });

  it('control endpoints: a socket in a private folder on Linux and macOS, an unguessable pipe on Windows', async () => {
    const pipe = await windowsPlatform.controlEndpoint();
    assert.match(pipe.path, /^\\\\\.\\pipe\\pocketvm-[0-9a-f]{32}$/);
    assert.equal(pipe.privateDir, undefined);
    for (const platform of [linuxPlatform, darwinPlatform]) {
      const socket = await platform.controlEndpoint();
      try {
        assert.equal(socket.path, `${socket.privateDir}/control.sock`);
      } finally {
        await rm(socket.privateDir!, { recursive: true, force: true });
      }
    }
  });

  it('orphan guard: Windows and macOS run QEMU as given (the known gap); Linux wraps it when util-linux is there', () => {
    for (const platform of [windowsPlatform, darwinPlatform]) assert.deepEqual(platform.orphanGuard('qemu', ['-S']), { command: 'qemu', args: ['-S'] });
    const linux = linuxPlatform.orphanGuard('qemu', ['-S']);
    if (linux.command === 'qemu') assert.deepEqual(linux.args, ['-S']);
    else assert.deepEqual(linux.args.slice(-3), ['--', 'qemu', '-S']);
  });

  it('the modules that ask it: nothing to do on Windows and macOS where Linux acts', () => {
    assert.deepEqual(forbidDumps('win32'), { notDumpable: false, coreLimit: false });
    assert.deepEqual(disableCoreDumps('darwin'), { filter: false, rlimit: false });
    assert.deepEqual(disableCoreDumps('win32'), { filter: false, rlimit: false });
    assert.equal(keychainAbsentReason({}, 'darwin'), undefined);
    assert.equal(keychainAbsentReason({}, 'win32'), undefined);
    for (const platform of ['win32', 'darwin'] as const)
      assert.deepEqual(GuestRamFile.create(4, { platform }), { reason: 'guest RAM in /dev/shm is for Linux hosts' });
  });
});
