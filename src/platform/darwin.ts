// Untested at run time: built and unit-tested here, never run on macOS.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostPlatform } from './host-platform.ts';

export const darwinPlatform: HostPlatform = {
  os: 'darwin',
  nodePlatform: 'darwin',
  platform: process.arch === 'arm64' ? 'darwin-arm64' : 'darwin-x64',
  binFolder: `darwin-${process.arch}`,
  executableSuffix: '',
  qemuInstallHint: 'install QEMU with `brew install qemu`, or put a portable QEMU in .pocketvm/qemu/darwin-*/ on the stick',
  caseInsensitivePaths: true,
  orphanGuard(command, args) {
    // No kernel-enforced guard here yet (a Job object / kqueue watcher needs a
    // native addon); the launcher's exit handlers still kill QEMU on every
    // catchable exit. Listed as a known gap in the README.
    return { command, args };
  },
  async controlEndpoint() {
    // mkdtemp creates the directory 0700: only this user can reach the socket.
    const privateDir = await mkdtemp(join(process.env['TMPDIR'] || tmpdir(), 'pocketvm-'));
    return { path: join(privateDir, 'control.sock'), privateDir };
  },
  dumpGuard: 'setrlimit',
  libc: '/usr/lib/libSystem.B.dylib',
  procCoreDumpControls: false,
  qemuNoDumpPreload: false,
  keychainNeedsSessionBus: false,
  statfsPseudoFileSystems: false,
  sysfsBlockDevices: false,
  procMountinfo: false,
  procSelfFd: false,
  shareFileManager: 'finder',
  setXattrCommand(path: string, name: string, hex: string) {
    return { command: 'xattr', args: ['-wx', name, hex, path] };
  },
  hardLinksSymlinks: false,
  windowsFileSystem: false,
  guestRamInDevShm: false,
  openBrowser: (url) => ({ command: 'open', args: [url] }),
  windowDisplays: ['cocoa'],
};
