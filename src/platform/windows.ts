// Untested at run time: built and unit-tested here, never run on Windows.
import { randomBytes } from 'node:crypto';
import type { HostPlatform } from './host-platform.ts';

export const windowsPlatform: HostPlatform = {
  os: 'windows',
  nodePlatform: 'win32',
  platform: 'win-x64',
  binFolder: `win-${process.arch}`,
  executableSuffix: '.exe',
  qemuInstallHint:
    'put a portable QEMU for Windows in .pocketvm\\qemu\\win-x64\\ on the stick (see README, "Getting QEMU"), or install QEMU for Windows and add it to PATH',
  caseInsensitivePaths: true,
  orphanGuard(command, args) {
    // No kernel-enforced guard here yet (a Job object / kqueue watcher needs a
    // native addon); the launcher's exit handlers still kill QEMU on every
    // catchable exit. Listed as a known gap in the README.
    return { command, args };
  },
  async controlEndpoint() {
    return { path: `\\\\.\\pipe\\pocketvm-${randomBytes(16).toString('hex')}` };
  },
  dumpGuard: 'none',
  libc: 'libc.so.6',
  procCoreDumpControls: false,
  qemuNoDumpPreload: false,
  keychainNeedsSessionBus: false,
  statfsPseudoFileSystems: false,
  sysfsBlockDevices: false,
  procMountinfo: false,
  procSelfFd: false,
  shareFileManager: 'explorer',
  // NTFS has extended attributes, but no tool for them ships with Windows.
  setXattrCommand: () => undefined,
  hardLinksSymlinks: false,
  windowsFileSystem: true,
  guestRamInDevShm: false,
  openBrowser: (url) => ({ command: 'rundll32', args: ['url.dll,FileProtocolHandler', url] }),
  windowDisplays: ['gtk', 'sdl'],
};
