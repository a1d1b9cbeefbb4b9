// How much of the host a guest gets. The manifest's recommendation, unless the
// host cannot spare it: a guest never takes more than half of the host's
// available memory or more than all but one of its CPU threads, and never less
// than the manifest's minimum (below that it would not boot at all).
import { availableParallelism, freemem } from 'node:os';
import type { GuestManifest } from '../payload/manifest.ts';

export interface MachineSizing {
  memoryMiB: number;
  cpus: number;
  reasons: string[];
}

export function sizeMachine(manifest: GuestManifest, host = { availableMiB: Math.floor(freemem() / 1048576), threads: availableParallelism() }): MachineSizing {
  const reasons: string[] = [];
  const memoryCap = Math.floor(host.availableMiB / 2);
  let memoryMiB = manifest.memory.recommendedMiB;
  if (memoryMiB > memoryCap) {
    memoryMiB = Math.max(manifest.memory.minimumMiB, memoryCap);
    reasons.push(`memory lowered to ${memoryMiB} MiB: the host has ${host.availableMiB} MiB available`);
  }
  const cpuCap = Math.max(1, host.threads - 1);
  let cpus = manifest.cpus.recommended;
  if (cpus > cpuCap) {
    cpus = Math.max(manifest.cpus.minimum, cpuCap);
    reasons.push(`vCPUs lowered to ${cpus}: the host has ${host.threads} threads`);
  }
  return { memoryMiB, cpus, reasons };
}
