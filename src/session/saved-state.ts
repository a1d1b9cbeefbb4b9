// A suspended guest on the stick: users/<name>/state/<guest>.vmstate, what
// its header says about the machine it came from, and whether this PC can
// resume it. Both `launcher run` (before it hands over the key, so it can ask
// the person) and launchSession (before it starts QEMU) ask the same question
// here, with the same answer.
import { existsSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { personalDiskPath, userPaths } from '../auth/users.ts';
import { SavedStateError } from '../errors.ts';
import { syncDirectory } from '../primitives/atomic-replace.ts';
import type { StickLayout } from '../stick/layout.ts';
import type { Accelerator } from '../vmm/machine-spec.ts';
import { OpenedState, readStateHead } from '../vmm/state-cipher.ts';
import { type DiskGeneration, readDiskGeneration } from './disk-generation.ts';
import { AVAILABLE_SHARE, HOST_RESERVE_MIB } from './sizing.ts';

export const VMSTATE_FORMAT = 'pocketvm-vmstate';

/** What the header records (besides the cipher parameters). Not secret; authenticated. */
export interface VmStateMeta {
  format: typeof VMSTATE_FORMAT;
  guest: string;
  user: string;
  userId: string;
  createdAt: string;
  /** The salted fingerprint of the PC it was saved on (src/platform/host-fingerprint.ts). */
  host: string | null;
  /** qemuVersionString(): the QEMU that can load it. */
  qemu: string;
  /** The versioned machine type `q35` stood for (pc-q35-7.2). */
  machineType: string;
  cpuModel: string;
  accelerator: Accelerator;
  memoryMiB: number;
  cpus: number;
  /** The personal disk's generation while it ran (src/session/disk-generation.ts); absent in states from before generations. */
  diskGeneration?: DiskGeneration;
}

export function savedStatePaths(layout: StickLayout, user: string, guest: string): { dir: string; file: string; partial: string } {
  const dir = join(userPaths(layout, user).dir, 'state');
  const file = join(dir, `${guest}.vmstate`);
  return { dir, file, partial: `${file}.partial` };
}

/** What this PC offers a saved state. */
export interface ResumeHost {
  /** This QEMU's qemuVersionString(). */
  qemuVersion: string;
  /** The accelerators a launch here may use (the fallback plan's candidates). */
  accelerators: readonly Accelerator[];
  memory: { totalMiB: number; availableMiB: number };
  fingerprint: string | null;
}

export type ResumeVerdict =
  | { resumable: true; file: string; meta: VmStateMeta; bytes: number; chunks: number; sameHost: boolean }
  | { resumable: false; file: string; reason: string; message: string; meta?: VmStateMeta };

function isMeta(value: Record<string, unknown>): boolean {
  return (
    value['format'] === VMSTATE_FORMAT &&
    typeof value['guest'] === 'string' &&
    typeof value['user'] === 'string' &&
    typeof value['qemu'] === 'string' &&
    typeof value['machineType'] === 'string' &&
    typeof value['cpuModel'] === 'string' &&
    typeof value['accelerator'] === 'string' &&
    Number.isInteger(value['memoryMiB']) &&
    Number.isInteger(value['cpus']) &&
    typeof value['createdAt'] === 'string'
  );
}

/**
 * undefined: there is no saved state. Otherwise whether it can be resumed on
 * this PC, and if not, why (one line). Reads the header, verifies it under
 * the key, checks the end of the file (truncation) and the machine it needs;
 * the chunks in between are verified as they are loaded.
 */
export async function examineSavedState(args: {
  layout: StickLayout;
  guest: string;
  user: { name: string; id: string };
  stateKey: Buffer;
  host: () => Promise<ResumeHost>;
}): Promise<ResumeVerdict | undefined> {
  const { file } = savedStatePaths(args.layout, args.user.name, args.guest);
  if (!existsSync(file)) return undefined;
  const refuse = (reason: string, message: string, meta?: VmStateMeta): ResumeVerdict => ({
    resumable: false,
    file,
    reason,
    message,
    ...(meta ? { meta } : {}),
  });
  const handle = await open(file, 'r');
  let meta: VmStateMeta;
  let chunks: number;
  let bytes: number;
  try {
    bytes = (await handle.stat()).size;
    const head = await readStateHead<Record<string, unknown>>(handle);
    const opened = new OpenedState(args.stateKey, head);
    try {
      if (!isMeta(opened.header)) return refuse('format', 'its header does not describe a pocketvm guest');
      meta = opened.header as unknown as VmStateMeta;
      ({ chunks } = await opened.checkEnd(handle, bytes));
    } finally {
      opened.dispose();
    }
  } catch (error) {
    if (error instanceof SavedStateError) return refuse(String(error.details['reason'] ?? 'damaged'), error.message.replace(/^the saved state /, 'it '));
    throw error;
  } finally {
    await handle.close();
  }
  if (meta.guest !== args.guest || meta.user !== args.user.name || (meta.userId && meta.userId !== args.user.id))
    return refuse('mismatch', `it belongs to ${meta.user}'s ${meta.guest} guest`, meta);
  const stale = staleness(meta.diskGeneration, await readDiskGeneration({ layout: args.layout, user: args.user, guest: args.guest, stateKey: args.stateKey }));
  if (stale) return refuse('stale', stale, meta);
  const host = await args.host();
  if (meta.qemu !== host.qemuVersion) return refuse('qemu', `it was saved by QEMU ${meta.qemu}; this PC runs QEMU ${host.qemuVersion}`, meta);
  if (!host.accelerators.includes(meta.accelerator))
    return refuse('accelerator', `it was saved under ${meta.accelerator}, which is not available here (${host.accelerators.join(', ')})`, meta);
  const capMiB = Math.min(Math.floor(host.memory.availableMiB * AVAILABLE_SHARE), host.memory.totalMiB - HOST_RESERVE_MIB);
  if (meta.memoryMiB > capMiB) return refuse('memory', `it needs ${meta.memoryMiB} MiB of memory; this PC can spare ${Math.max(0, capMiB)} MiB now`, meta);
  if (!existsSync(personalDiskPath(args.layout, args.user.name, args.guest)))
    return refuse('disk-missing', `${args.user.name}'s personal disk for ${args.guest} is missing`, meta);
  return { resumable: true, file, meta, bytes, chunks, sameHost: meta.host !== null && meta.host === host.fingerprint };
}

/**
 * Why a state saved in generation `saved` must not be resumed over a disk
 * now in `current` (src/session/disk-generation.ts), or undefined when it may.
 */
export function staleness(saved: DiskGeneration | undefined, current: DiskGeneration | undefined | 'forged'): string | undefined {
  if (current === 'forged')
    return "the personal disk's generation record does not verify (changed without the passphrase), so nothing says the disk is still as the state left it";
  if (saved === undefined) return current === undefined ? undefined : 'it is older than the personal disk, which has been written since';
  if (current === undefined) return "the personal disk's generation record is missing, so nothing says the disk is still as the state left it";
  if (saved.id !== current.id)
    return `it was saved in run ${saved.n} of the personal disk, which has been written since (run ${current.n}): resuming it would lose or corrupt that newer data`;
  return undefined;
}

/** The one line a person reads when a state is not resumed. */
export function describeUnresumable(verdict: Extract<ResumeVerdict, { resumable: false }>): string {
  const when = verdict.meta ? ` (suspended ${verdict.meta.createdAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')})` : '';
  return `the suspended guest in ${verdict.file}${when} cannot be resumed on this PC: ${verdict.message}`;
}

/**
 * A cold boot keeps the state, out of the way: never resumed again (its
 * memory no longer matches the disk once the guest has booted afresh), only
 * kept until the person deletes it.
 */
export async function setStateAside(file: string, now = new Date()): Promise<string> {
  const aside = `${file}.set-aside-${now.toISOString().replace(/[:.]/g, '-')}`;
  await rename(file, aside);
  await syncDirectory(dirname(file));
  return aside;
}

export async function deleteSavedState(file: string): Promise<void> {
  await rm(file, { force: true });
  await syncDirectory(dirname(file));
}
