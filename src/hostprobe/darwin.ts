import { execFileSync } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostAdapter } from './host-adapter.ts';

// Untested at runtime: built and unit-tested here, never run on macOS.
export const darwinHost: HostAdapter = {
  os: 'darwin',
  platform: process.arch === 'arm64' ? 'darwin-arm64' : 'darwin-x64',
  executableSuffix: '',
  qemuInstallHint: 'install QEMU with `brew install qemu`, or put a portable QEMU in .pocketvm/qemu/darwin-*/ on the stick',
  async probeAccelerators() {
    try {
      const value = execFileSync('sysctl', ['-n', 'kern.hv_support'], { encoding: 'utf8' }).trim();
      return [{ name: 'hvf', usable: value === '1', reason: `sysctl kern.hv_support = ${value}` }];
    } catch {
      return [{ name: 'hvf', usable: false, reason: 'sysctl kern.hv_support could not be read' }];
    }
  },
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
};
