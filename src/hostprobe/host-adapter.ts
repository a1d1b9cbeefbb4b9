// One adapter per host OS; `currentHostAdapter` (host-adapter-for.ts) picks it
// once. Everything that differs between Linux, Windows and macOS hosts is a
// field here, so no other module asks which platform it runs on.
import type { Accelerator, HostOs } from '../vmm/machine-spec.ts';

export interface AcceleratorProbe {
  name: Accelerator;
  /** Present and, as far as can be told without starting a guest, usable. */
  usable: boolean;
  reason: string;
}

export interface HostAdapter {
  os: HostOs;
  /** Platform folder name for bundled binaries: `.pocketvm/qemu/<platform>/`. */
  platform: string;
  executableSuffix: '' | '.exe';
  /** One line telling a person how to get QEMU on this kind of host. */
  qemuInstallHint: string;
  /** Hardware accelerators in order of preference; TCG is added by the caller. */
  probeAccelerators(): Promise<AcceleratorProbe[]>;
  /**
   * Wraps the QEMU command so that QEMU dies with the launcher, even when the
   * launcher is killed with SIGKILL and cannot clean up.
   */
  orphanGuard(command: string, args: string[]): { command: string; args: string[] };
  /**
   * Where a session's control server listens: a UNIX socket inside a fresh
   * directory only this user can enter (removed at teardown), or a named pipe
   * with an unguessable name.
   */
  controlEndpoint(): Promise<{ path: string; privateDir?: string }>;
}
