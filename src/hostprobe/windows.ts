import { randomBytes } from 'node:crypto';
import type { HostAdapter } from './host-adapter.ts';

// Untested at runtime: built and unit-tested here, never run on Windows.
export const windowsHost: HostAdapter = {
  os: 'windows',
  platform: 'win-x64',
  executableSuffix: '.exe',
  qemuInstallHint: 'put a portable QEMU for Windows in .pocketvm\\qemu\\win-x64\\ on the stick (see README, "Getting QEMU"), or install QEMU for Windows and add it to PATH',
  async probeAccelerators() {
    // WHPX cannot be seen without starting QEMU: try it, and fall back on failure.
    return [{ name: 'whpx', usable: true, reason: 'Windows Hypervisor Platform may be enabled; it is tried and dropped if QEMU refuses it' }];
  },
  orphanGuard(command, args) {
    // No kernel-enforced guard here yet (a Job object / kqueue watcher needs a
    // native addon); the launcher's exit handlers still kill QEMU on every
    // catchable exit. Listed as a known gap in the README.
    return { command, args };
  },
  async controlEndpoint() {
    return { path: `\\\\.\\pipe\\pocketvm-${randomBytes(16).toString('hex')}` };
  },
};
