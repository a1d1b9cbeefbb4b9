import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findOnPath } from './find-on-path.ts';
import type { HostPlatform } from './host-platform.ts';

export const linuxPlatform: HostPlatform = {
  os: 'linux',
  nodePlatform: 'linux',
  platform: 'linux-x64',
  binFolder: `linux-${process.arch}`,
  executableSuffix: '',
  qemuInstallHint:
    'install QEMU with `sudo apt-get install qemu-system-x86 qemu-utils` (Debian/Ubuntu) or `sudo dnf install qemu-system-x86 qemu-img` (Fedora), or put a portable QEMU in .pocketvm/qemu/linux-x64/ on the stick',
  caseInsensitivePaths: false,
  orphanGuard(command, args) {
    // RLIMIT_CORE 0 through util-linux's prlimit: QEMU holds the disk key and
    // the guest's memory, and its seccomp sandbox (resourcecontrol=deny) keeps
    // it from raising the limit again.
    const prlimit = findOnPath('prlimit');
    const limited = prlimit ? { command: prlimit, args: ['--core=0:0', '--', command, ...args] } : { command, args };
    // PR_SET_PDEATHSIG through util-linux's setpriv: the kernel kills QEMU the
    // moment the launcher's thread exits, whatever killed it (kept across prlimit's exec).
    const setpriv = findOnPath('setpriv');
    if (setpriv) return { command: setpriv, args: ['--pdeathsig', 'KILL', '--', limited.command, ...limited.args] };
    return limited;
  },
  async controlEndpoint() {
    // mkdtemp creates the directory 0700: only this user can reach the socket.
    const privateDir = await mkdtemp(join(process.env['XDG_RUNTIME_DIR'] || tmpdir(), 'pocketvm-'));
    return { path: join(privateDir, 'control.sock'), privateDir };
  },
  dumpGuard: 'prctl',
  libc: 'libc.so.6',
  procCoreDumpControls: true,
  qemuNoDumpPreload: true,
  keychainNeedsSessionBus: true,
  statfsPseudoFileSystems: true,
  sysfsBlockDevices: true,
  procMountinfo: true,
  procSelfFd: true,
  shareFileManager: 'gnome-files',
  setXattrCommand(path: string, name: string, hex: string) {
    return { command: 'setfattr', args: ['-n', name, '-v', `0x${hex}`, '--', path] };
  },
  hardLinksSymlinks: true,
  windowsFileSystem: false,
  guestRamInDevShm: true,
  openBrowser: (url, env) => (env['DISPLAY'] || env['WAYLAND_DISPLAY'] ? { command: 'xdg-open', args: [url] } : undefined),
  windowDisplays: ['gtk', 'sdl'],
};
