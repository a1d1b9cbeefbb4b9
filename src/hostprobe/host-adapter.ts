// One adapter per host OS; `currentHostAdapter` (current-host.ts) picks it
// once. Everything that differs between Linux, Windows and macOS hosts is a
// field here, so no other module asks which platform it runs on.
import type { Accelerator, HostOs } from '../vmm/machine-spec.ts';
import type { CpuFacts, DisplayFacts, KeyboardFacts, MemoryFacts, OsFacts, ProxyFacts, TimezoneFacts } from './host-profile.ts';
import type { ProbeSource } from '../platform/probe-source.ts';
import type { ListedDrive } from './stick-drive.ts';

export interface AcceleratorProbe {
  name: Accelerator;
  /** Present and, as far as can be told without starting a guest, usable. */
  usable: boolean;
  reason: string;
}

/**
 * The host facts one OS knows how to read, each read on its own (probeHost
 * bounds each in time and turns a failure into a note). Every method reads
 * only through its ProbeSource, so recorded outputs can stand in for a host.
 */
export interface PlatformProbe {
  os(): Promise<OsFacts>;
  cpu(): Promise<CpuFacts>;
  memory(): Promise<MemoryFacts & { note?: string }>;
  accelerators(): Promise<AcceleratorProbe[]>;
  display(): Promise<DisplayFacts>;
  locale(): Promise<string | null>;
  keyboard(): Promise<KeyboardFacts | null>;
  timezone(): Promise<TimezoneFacts | null>;
  proxy(): Promise<ProxyFacts>;
  /** The USB port path (`1-2.3`) behind a block device, where the OS shows it (Linux sysfs); else null. */
  usbPortOf(device: string): Promise<string | null>;
  /**
   * The drive holding `path` from the OS's own tools, for when drivelist cannot
   * load (a stick without drivelist.node for this OS); null where there is no such way.
   */
  driveHolding(path: string): Promise<ListedDrive | null>;
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
  /** Reads this kind of host through `source` (default: the live host). */
  probe(source?: ProbeSource): PlatformProbe;
  /** Whether paths on this host compare case-insensitively (mount point matching). */
  caseInsensitivePaths: boolean;
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
