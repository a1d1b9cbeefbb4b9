// One adapter per host OS: the platform's record (src/platform/, chosen once
// by src/platform/current.ts) with the way to read that kind of host's facts.
// `currentHostAdapter` (current-host.ts) gives this host's.
import type { HostPlatform } from '../platform/host-platform.ts';
import type { AcceleratorProbe } from '../vmm/accelerator-fallback.ts';
import type { CpuFacts, DisplayFacts, KeyboardFacts, MemoryFacts, OsFacts, ProxyFacts, TimezoneFacts } from './host-profile.ts';
import type { ProbeSource } from '../platform/probe-source.ts';
import type { ListedDrive } from './stick-drive.ts';

export type { AcceleratorProbe };

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

export interface HostAdapter extends HostPlatform {
  /** Hardware accelerators in order of preference; TCG is added by the caller. */
  probeAccelerators(): Promise<AcceleratorProbe[]>;
  /** Reads this kind of host through `source` (default: the live host). */
  probe(source?: ProbeSource): PlatformProbe;
}
