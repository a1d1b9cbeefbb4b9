import { accessSync, constants, existsSync } from 'node:fs';
import { access, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { AcceleratorProbe, HostAdapter } from './host-adapter.ts';

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

async function probeKvm(): Promise<AcceleratorProbe> {
  if (!existsSync('/dev/kvm')) return { name: 'kvm', usable: false, reason: '/dev/kvm does not exist (no KVM module, or inside a VM without nested virtualisation)' };
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
    return { name: 'kvm', usable: true, reason: '/dev/kvm is readable and writable' };
  } catch {
    return { name: 'kvm', usable: false, reason: '/dev/kvm exists but this user may not open it (join the kvm group)' };
  }
}

export const linuxHost: HostAdapter = {
  os: 'linux',
  platform: 'linux-x64',
  executableSuffix: '',
  qemuInstallHint: 'install QEMU with `sudo apt-get install qemu-system-x86 qemu-utils` (Debian/Ubuntu) or `sudo dnf install qemu-system-x86 qemu-img` (Fedora), or put a portable QEMU in .pocketvm/qemu/linux-x64/ on the stick',
  async probeAccelerators() {
    return [await probeKvm()];
  },
  orphanGuard(command, args) {
    // PR_SET_PDEATHSIG through util-linux's setpriv: the kernel kills QEMU the
    // moment the launcher's thread exits, whatever killed it.
    const setpriv = findOnPath('setpriv');
    if (setpriv) return { command: setpriv, args: ['--pdeathsig', 'KILL', '--', command, ...args] };
    return { command, args };
  },
  async controlEndpoint() {
    // mkdtemp creates the directory 0700: only this user can reach the socket.
    const privateDir = await mkdtemp(join(process.env['XDG_RUNTIME_DIR'] || tmpdir(), 'pocketvm-'));
    return { path: join(privateDir, 'control.sock'), privateDir };
  },
};
