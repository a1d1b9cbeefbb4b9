// How much of the host a guest gets (docs/host-probe.md, "Sizing: never starve the host").
//
// Memory: the override (registry Machine\MemoryMiB) or else the manifest's
// recommendation, capped at half of the host's available memory and at its
// total less a 1 GiB reserve. Below the manifest's minimum the guest would not
// boot: the launch is refused (HostTooSmallError) rather than starving the host.
// An override below the minimum is raised to it.
//
// vCPUs: the override (Machine\Cpus) or else the recommendation, at most the
// host's threads less one (so the host keeps a thread), at least 1. A guest
// whose minimum exceeds that still gets its minimum while the host has that
// many threads (vCPUs are time-shared: it slows, it does not starve); beyond
// the host's threads it is refused.
//
// Several guests at once (docs/guests.md, "Several at once"): the guests
// already running from the stick count against the host. Their memory comes
// off the total before the reserve (the share of what is available sees it
// already, as the host sees it used); a guest whose minimum no longer fits is
// refused with the running guests named (HostBusyError, exit 34) where it
// would have fit alone. Their vCPUs come off the threads the cap leaves; a
// guest's minimum is still granted while the host has that many threads
// (time-shared, as above).
import { HostBusyError, HostTooSmallError } from '../errors.ts';
import type { HostProfile } from '../hostprobe/host-profile.ts';
import type { GuestManifest } from '../payload/guest-manifest.ts';

export interface MachineSizing {
  memoryMiB: number;
  cpus: number;
  /** One line per decision, for `launcher probe` and the session log. */
  reasons: string[];
}

/** A guest already running from the stick, as its session lock records its size. */
export interface RunningGuest {
  guest: string;
  memoryMiB: number;
  cpus: number;
}

export interface SizingOverrides {
  memoryMiB?: number;
  cpus?: number;
}

/** The part of a HostProfile sizing reads. */
export type SizingHost = { memory: Pick<HostProfile['memory'], 'totalMiB' | 'availableMiB'>; cpu: Pick<HostProfile['cpu'], 'threads'> };

/** Memory the host keeps for itself whatever the guest asks. */
export const HOST_RESERVE_MIB = 1024;
/** The share of the host's available memory a guest may take. */
export const AVAILABLE_SHARE = 0.5;

/** What the host could spare this guest were the running guests not there (their memory counted as available again). */
function aloneCap(memory: SizingHost['memory'], reserveCap: number, othersMiB: number): number {
  return Math.min(Math.floor(Math.min(memory.totalMiB, memory.availableMiB + othersMiB) * AVAILABLE_SHARE), reserveCap);
}

export function sizeMachine(
  manifest: GuestManifest,
  profile: SizingHost,
  overrides: SizingOverrides = {},
  running: readonly RunningGuest[] = [],
): MachineSizing {
  const reasons: string[] = [];
  const othersMiB = running.reduce((sum, other) => sum + other.memoryMiB, 0);
  const othersCpus = running.reduce((sum, other) => sum + other.cpus, 0);
  const others = running.map((other) => `${other.guest} (${other.memoryMiB} MiB, ${other.cpus} vCPU)`).join(', ');
  const { totalMiB, availableMiB } = profile.memory;
  const { minimumMiB, recommendedMiB } = manifest.memory;

  let wantedMiB = recommendedMiB;
  let wantedFrom = `the guest's recommended ${recommendedMiB} MiB`;
  if (overrides.memoryMiB !== undefined) {
    wantedMiB = Math.floor(overrides.memoryMiB);
    wantedFrom = `the override Machine\\MemoryMiB = ${overrides.memoryMiB}`;
    if (wantedMiB < minimumMiB) {
      reasons.push(`memory override ${overrides.memoryMiB} MiB is below the guest's minimum: raised to ${minimumMiB} MiB`);
      wantedMiB = minimumMiB;
      wantedFrom = `the guest's minimum ${minimumMiB} MiB`;
    }
  }
  const shareCap = Math.floor(availableMiB * AVAILABLE_SHARE);
  const reserveCap = totalMiB - HOST_RESERVE_MIB - othersMiB;
  const capMiB = Math.min(shareCap, reserveCap);
  if (capMiB < minimumMiB && running.length > 0 && aloneCap(profile.memory, reserveCap + othersMiB, othersMiB) >= minimumMiB) {
    throw new HostBusyError(
      `this computer cannot spare the ${minimumMiB} MiB the ${manifest.name} guest needs beside the guests running from this stick: ${others} (${totalMiB} MiB total less theirs and the ${HOST_RESERVE_MIB} MiB the host keeps leaves ${reserveCap} MiB)`,
      {
        hint: 'stop one of them first (launcher stop --guest NAME), or give them less memory (launcher guest config NAME set memory MIB)',
        details: { resource: 'memory', minimumMiB, availableMiB, totalMiB, capMiB, running },
      },
    );
  }
  if (capMiB < minimumMiB) {
    const binding =
      shareCap <= reserveCap
        ? `half of the ${availableMiB} MiB available is ${shareCap} MiB`
        : `${totalMiB} MiB total less the ${HOST_RESERVE_MIB} MiB the host keeps${othersMiB > 0 ? " and the running guests' memory" : ''} is ${reserveCap} MiB`;
    throw new HostTooSmallError(`this computer cannot spare the ${minimumMiB} MiB the ${manifest.name} guest needs at least (${binding})`, {
      hint: 'close programs to free memory and try again, or use a computer with more memory',
      details: { resource: 'memory', minimumMiB, availableMiB, totalMiB, capMiB },
    });
  }
  let memoryMiB = wantedMiB;
  if (wantedMiB > capMiB) {
    memoryMiB = capMiB;
    const binding =
      shareCap <= reserveCap
        ? `half of the host's ${availableMiB} MiB available`
        : `the host's ${totalMiB} MiB total less a ${HOST_RESERVE_MIB} MiB reserve${othersMiB > 0 ? " and the running guests' memory" : ''}`;
    reasons.push(`memory ${memoryMiB} MiB: ${wantedFrom} is more than ${binding} (${capMiB} MiB)`);
  } else {
    reasons.push(`memory ${memoryMiB} MiB: ${wantedFrom} (the host could spare up to ${capMiB} MiB)`);
  }
  if (running.length > 0) reasons.push(`sharing the host with ${others}`);

  const { threads } = profile.cpu;
  const { minimum: minimumCpus, recommended: recommendedCpus } = manifest.cpus;
  let wantedCpus = recommendedCpus;
  let cpusFrom = `the guest's recommended ${recommendedCpus}`;
  if (overrides.cpus !== undefined) {
    wantedCpus = Math.max(1, Math.floor(overrides.cpus));
    cpusFrom = `the override Machine\\Cpus = ${overrides.cpus}`;
    if (wantedCpus < minimumCpus) {
      reasons.push(`vCPU override ${overrides.cpus} is below the guest's minimum: raised to ${minimumCpus}`);
      wantedCpus = minimumCpus;
      cpusFrom = `the guest's minimum ${minimumCpus}`;
    }
  }
  const cpuCap = Math.max(1, threads - 1 - othersCpus);
  let cpus = Math.min(wantedCpus, cpuCap);
  if (cpus < minimumCpus) {
    if (minimumCpus > threads) {
      throw new HostTooSmallError(
        `this computer has ${threads} CPU thread${threads === 1 ? '' : 's'}; the ${manifest.name} guest needs at least ${minimumCpus}`,
        {
          hint: 'use a computer with more CPU threads',
          details: { resource: 'cpus', minimum: minimumCpus, threads },
        },
      );
    }
    cpus = minimumCpus;
    reasons.push(`vCPUs ${cpus}: the guest's minimum, sharing the host's last thread (the host has ${threads})`);
  } else if (cpus < wantedCpus) {
    reasons.push(
      `vCPUs ${cpus}: ${cpusFrom} is more than the host's ${threads} threads less one${othersCpus > 0 ? ` and the ${othersCpus} of the guests running` : ''}`,
    );
  } else {
    reasons.push(`vCPUs ${cpus}: ${cpusFrom} (the host has ${threads} threads, one kept for itself)`);
  }
  return { memoryMiB, cpus, reasons };
}
