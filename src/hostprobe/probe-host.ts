// probeHost: the HostProfile of this PC. Every step runs side by side with a
// time bound; a step that fails or overruns yields null (or the node:os
// fallback for the facts a launch cannot do without) and a note saying why.
// A probe never throws: a launch goes on with what could be learnt.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { stickLayout } from '../stick/layout.ts';
import { currentHostAdapter } from './current-host.ts';
import type { HostAdapter, PlatformProbe } from './host-adapter.ts';
import { hostFingerprint } from '../platform/host-fingerprint.ts';
import type { HostProfile, ProbeNote, StickFacts } from './host-profile.ts';
import { liveSource, type ProbeSource } from '../platform/probe-source.ts';
import {
  describeDrive,
  findStickDrive,
  type ListedDrive,
  type ListedUsbDevice,
  listDrives,
  listUsbDevices,
  matchUsbIdentity,
  stickKind,
} from './stick-drive.ts';

export interface ProbeHostOptions {
  /** Default: the adapter for this OS (current-host.ts). */
  adapter?: HostAdapter;
  /** Default: the live host. Tests pass recorded outputs. */
  source?: ProbeSource;
  /** The stick root: its drive is looked up, and the fingerprint's salt kept there. */
  stickRoot?: string;
  /** Each step's bound (default 2 s; listing drives gets twice that). */
  stepTimeoutMs?: number;
  listDrives?: () => Promise<ListedDrive[]>;
  listUsbDevices?: () => Promise<ListedUsbDevice[]>;
}

class StepTimeout extends Error {}

function errorText(error: unknown): string {
  if (error instanceof StepTimeout) return error.message;
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0]!.slice(0, 300);
}

/** Runs `fn` within `timeoutMs`; on failure or overrun, notes why and returns `fallback`. */
async function step<T>(name: string, timeoutMs: number, notes: ProbeNote[], fn: () => Promise<T>, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StepTimeout(`no answer within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([fn(), timeout]);
  } catch (error) {
    notes.push({ step: name, message: errorText(error) });
    return fallback;
  } finally {
    clearTimeout(timer);
  }
}

async function probeStick(
  stickRoot: string,
  adapter: HostAdapter,
  platform: PlatformProbe,
  source: ProbeSource,
  options: ProbeHostOptions,
  timeoutMs: number,
  notes: ProbeNote[],
): Promise<StickFacts> {
  const root = (await source.realPath(stickRoot)) ?? resolve(stickRoot);
  let drives = await step('stick drive', timeoutMs * 2, notes, () => (options.listDrives ?? listDrives)(), null);
  if (!drives) {
    // drivelist could not load or answer (no drivelist.node for this OS on the stick): the OS's own tools.
    const holding = await step('stick drive (OS tools)', timeoutMs, notes, () => platform.driveHolding(root), null);
    if (holding) drives = [holding];
  }
  if (!drives) return { root, mountpoint: null, drive: null, kind: 'unknown', usbIdentity: null };
  const found = findStickDrive(root, drives, adapter.caseInsensitivePaths);
  if (!found) {
    notes.push({ step: 'stick drive', message: `no listed drive has a mount point holding ${root}` });
    return { root, mountpoint: null, drive: null, kind: 'unknown', usbIdentity: null };
  }
  const drive = describeDrive(found.drive);
  const kind = stickKind(drive);
  if (kind === 'fixed-disk-folder') {
    notes.push({
      step: 'stick drive',
      message: `the stick is a folder on a fixed disk (${drive.device}, mounted on ${found.mountpoint}): fine for a checkout or a copy, only not portable`,
    });
    return { root, mountpoint: found.mountpoint, drive, kind, usbIdentity: null };
  }
  const usbIdentity = await step(
    'stick usb',
    timeoutMs,
    notes,
    async () => {
      const [portPath, devices] = await Promise.all([platform.usbPortOf(drive.device), (options.listUsbDevices ?? listUsbDevices)()]);
      const matched = matchUsbIdentity(devices, portPath);
      if (!matched)
        notes.push({ step: 'stick usb', message: portPath ? `no USB device at port ${portPath}` : 'the drive could not be tied to one USB device' });
      return matched;
    },
    null,
  );
  return { root, mountpoint: found.mountpoint, drive, kind, usbIdentity };
}

export async function probeHost(options: ProbeHostOptions = {}): Promise<HostProfile> {
  const started = performance.now();
  const adapter = options.adapter ?? currentHostAdapter();
  const timeoutMs = options.stepTimeoutMs ?? 2000;
  const source = options.source ?? liveSource({ timeoutMs });
  const platform = adapter.probe(source);
  const notes: ProbeNote[] = [];
  const basics = source.os;
  const run = <T>(name: string, fn: () => Promise<T>, fallback: T) => step(name, timeoutMs, notes, fn, fallback);

  // The salt lives on the stick: only a real stick (its marker present) gets
  // one written, never an arbitrary folder passed by mistake.
  const layout = options.stickRoot ? stickLayout(resolve(options.stickRoot)) : undefined;
  const fingerprint = layout && existsSync(layout.marker) ? run('fingerprint', () => hostFingerprint(layout.hostSalt), null) : Promise.resolve(null);

  const [os, cpu, memory, accelerators, display, locale, keyboard, timezone, proxy, stick, print] = await Promise.all([
    run('os', () => platform.os(), { family: adapter.os, name: null, version: null, kernel: basics.release, arch: basics.arch, machineArch: null }),
    run('cpu', () => platform.cpu(), { model: basics.cpuModel, cores: null, threads: basics.threads, virtualization: [], hypervisor: null }),
    run('memory', () => platform.memory(), { totalMiB: basics.totalMiB, availableMiB: basics.freeMiB }),
    run('accelerators', () => platform.accelerators(), []),
    run('display', () => platform.display(), null),
    run('locale', () => platform.locale(), null),
    run('keyboard', () => platform.keyboard(), null),
    run('timezone', () => platform.timezone(), null),
    run('proxy', () => platform.proxy(), null),
    options.stickRoot ? probeStick(options.stickRoot, adapter, platform, source, options, timeoutMs, notes) : Promise.resolve(null),
    fingerprint,
  ]);
  const { note: memoryNote, ...memoryFacts } = memory as typeof memory & { note?: string };
  if (memoryNote) notes.push({ step: 'memory', message: memoryNote });
  if (keyboard === null && !notes.some((n) => n.step === 'keyboard'))
    notes.push({ step: 'keyboard', message: 'no keyboard layout is configured on this host: the guest keeps its own' });
  return {
    schemaVersion: 1,
    probedAt: new Date().toISOString(),
    probeMs: Math.round(performance.now() - started),
    os,
    cpu,
    memory: memoryFacts,
    accelerators,
    display,
    stick,
    locale: { locale, keyboard, timezone },
    proxy,
    fingerprint: print,
    notes,
  };
}
