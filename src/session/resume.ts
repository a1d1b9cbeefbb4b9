// Resuming a suspended guest in launchSession: the same machine as the one
// saved (memory, vCPUs, CPU model, accelerator from the header; the same
// devices in the same order: the personal disk is plugged in over QMP while
// QEMU waits, as at boot), QEMU started with `-incoming defer`, the state read
// from the stick, verified chunk by chunk and streamed in over a
// launcher-only channel, `cont`; then the guest's clock is corrected through
// its agent, and only once the guest answers is the state file deleted. A
// resume that fails anywhere before that leaves the file where it was.
import { open } from 'node:fs/promises';
import { freemem, totalmem } from 'node:os';
import type { Duplex } from 'node:stream';
import { asPocketError, PocketError, SavedStateError } from '../errors.ts';
import { currentHostAdapter } from '../hostprobe/current-host.ts';
import { hostFingerprint } from '../platform/host-fingerprint.ts';
import { type StickLayout, stickLayout } from '../stick/layout.ts';
import { AcceleratorVerdicts, planAccelerators } from '../vmm/accelerator-fallback.ts';
import type { Machine } from '../vmm/machine.ts';
import type { Accelerator, MachineChannels } from '../vmm/machine-spec.ts';
import { migrateIn, probeQemuVersion, resolvedMachineType } from '../vmm/migration.ts';
import { findQemu, type QemuBinaries } from '../vmm/qemu-binary.ts';
import type { QmpClient } from '../vmm/qmp-client.ts';
import { OpenedState, readStateHead } from '../vmm/state-cipher.ts';
import type { ExtraChannel } from './extra-channel.ts';
import { deleteSavedState, describeUnresumable, examineSavedState, type ResumeHost, type ResumeVerdict, type VmStateMeta } from './saved-state.ts';

export const RESUME_CHANNEL_ID = 'vmstate-in';
const LOAD_TIMEOUT_MS = 10 * 60_000;

export interface ResumeReport {
  file: string;
  savedAt: string;
  /** Saved on this PC (same fingerprint) or another. */
  sameHost: boolean;
  bytes: number;
  loadMs: number;
  /** How far the guest's clock was moved (ms), or null if it could not be set. */
  clockStepMs: number | null;
}

export class GuestResume {
  readonly meta: VmStateMeta;
  readonly file: string;
  readonly bytes: number;
  readonly sameHost: boolean;
  /** The raw channel the state flows in on (MachineSpec.streams). */
  readonly channel: ExtraChannel = { id: RESUME_CHANNEL_ID, kind: 'stream' };
  /** Why loading failed, in the launcher's words (QEMU's exit would otherwise mask it). */
  failure: PocketError | undefined;
  loadMs = 0;
  /** The session's state key (it stays the session's: a later suspend seals with it). */
  readonly #key: Buffer;

  constructor(verdict: Extract<ResumeVerdict, { resumable: true }>, stateKey: Buffer) {
    this.meta = verdict.meta;
    this.file = verdict.file;
    this.bytes = verdict.bytes;
    this.sameHost = verdict.sameHost;
    this.#key = stateKey;
  }

  /** In the boot's attach step, after the disk is plugged in: the state into QEMU. */
  async load(qmp: QmpClient, streams: Readonly<Record<string, Duplex>>, channels: MachineChannels): Promise<void> {
    try {
      const endpoint = channels.extra?.[RESUME_CHANNEL_ID];
      const stream = streams[RESUME_CHANNEL_ID];
      if (endpoint?.kind !== 'fd' || !stream)
        throw new SavedStateError('resuming needs a descriptor channel, which this host does not offer yet', { details: { reason: 'unsupported' } });
      const machineType = await resolvedMachineType(qmp);
      if (machineType !== this.meta.machineType)
        throw new SavedStateError(`it was saved on machine type ${this.meta.machineType}; this QEMU's is ${machineType}`, { details: { reason: 'machine' } });
      const handle = await open(this.file, 'r');
      let opened: OpenedState<unknown> | undefined;
      try {
        opened = new OpenedState(this.#key, await readStateHead(handle));
        const source = opened.plaintext(handle);
        const { ms } = await migrateIn(qmp, endpoint.fd, source, stream, { timeoutMs: LOAD_TIMEOUT_MS });
        this.loadMs = ms;
      } finally {
        opened?.dispose();
        await handle.close();
      }
    } catch (error) {
      this.failure = asPocketError(error);
      throw error;
    }
  }

  /**
   * Any failure of a launch that was resuming, as the one line a person
   * reads: the state is still there, and how to get going again.
   */
  explain(error: unknown): PocketError {
    const cause = this.failure ?? asPocketError(error);
    if (cause instanceof SavedStateError && cause.details['kept']) return cause;
    // Ctrl-C or a pulled stick are what they are; the state is kept all the same.
    if (cause.exit === 'interrupted' || cause.exit === 'stickRemoved') return cause;
    const message = cause.message.replace(/^the saved state /, 'it ');
    const reason = String(cause.details['reason'] ?? 'resume-failed');
    const damaged = ['damaged', 'truncated', 'key', 'format'].includes(reason);
    return new SavedStateError(`the suspended guest in ${this.file} could not be resumed: ${message}; the saved state was kept`, {
      hint: damaged
        ? 'launcher run --cold-boot boots afresh (it sets the saved state aside)'
        : 'launcher run --cold-boot boots afresh (it sets the saved state aside); or resume it on the PC it was saved on',
      details: { reason, kept: true, file: this.file, cause: cause.message },
      cause,
    });
  }

  /** Once the guest answers: its clock to the host's, then the state file goes. */
  async finish(machine: Machine): Promise<ResumeReport> {
    const clockStepMs = await correctClock(machine);
    await deleteSavedState(this.file);
    return { file: this.file, savedAt: this.meta.createdAt, sameHost: this.sameHost, bytes: this.bytes, loadMs: this.loadMs, clockStepMs };
  }
}

/**
 * The guest's clock stood still while it was suspended: set it to the host's
 * (guest-set-time, nanoseconds since the epoch). qemu-ga then also writes the
 * RTC with hwclock; if only that part fails, the system clock is set anyway,
 * which guest-get-time confirms.
 */
export async function correctClock(machine: Machine): Promise<number | null> {
  const readGuest = async () => Number(await machine.agent.execute<number>('guest-get-time')) / 1e6;
  let before: number;
  try {
    before = await readGuest();
  } catch {
    return null;
  }
  const hostNow = Date.now();
  await machine.agent.execute('guest-set-time', { time: hostNow * 1_000_000 }).catch(() => {});
  const after = await readGuest().catch(() => undefined);
  if (after === undefined || Math.abs(after - Date.now()) > 2_000) return null;
  return Math.round(hostNow - before);
}

/**
 * Before QEMU starts: undefined when there is no saved state; a GuestResume
 * when it can be resumed here; otherwise a SavedStateError naming why, with
 * the state kept (`launcher run` has already asked the person what to do; a
 * launch that gets here with an unresumable state was not told).
 */
export async function planResume(args: {
  layout: StickLayout;
  guest: string;
  user: { name: string; id: string };
  stateKey: Buffer;
  qemu: QemuBinaries;
  accelerators: readonly Accelerator[];
  memory: { totalMiB: number; availableMiB: number };
  fingerprint: string | null;
}): Promise<GuestResume | undefined> {
  const verdict = await examineSavedState({
    layout: args.layout,
    guest: args.guest,
    user: args.user,
    stateKey: args.stateKey,
    host: async () => ({ qemuVersion: await probeQemuVersion(args.qemu), accelerators: args.accelerators, memory: args.memory, fingerprint: args.fingerprint }),
  });
  if (!verdict) return undefined;
  if (!verdict.resumable) throw unresumableError(verdict);
  return new GuestResume(verdict, args.stateKey);
}

/** The refusal for a state that cannot be resumed here and that nobody chose what to do with. */
export function unresumableError(verdict: Extract<ResumeVerdict, { resumable: false }>, chosen?: 'keep-state'): SavedStateError {
  return new SavedStateError(describeUnresumable(verdict) + (chosen ? '; it was kept for another PC' : '; it was kept'), {
    hint: chosen
      ? 'resume it on a PC that can, or boot afresh here with launcher run --cold-boot (the state is set aside)'
      : ['damaged', 'truncated', 'key', 'format', 'mismatch', 'stale'].includes(verdict.reason)
        ? 'launcher run --cold-boot boots afresh (the state is set aside)'
        : 'launcher run --cold-boot boots afresh (the state is set aside); --keep-state leaves it for another PC',
    details: { reason: chosen ? 'kept' : verdict.reason, problem: verdict.reason, kept: true, file: verdict.file },
  });
}

/**
 * What this PC offers a saved state, found the cheap way (no full host
 * probe): for `launcher run` to decide before the session starts, with the
 * same rules planResume applies in the session.
 */
export async function resumeHostHere(stickRoot: string, accelerator: Accelerator | 'auto'): Promise<ResumeHost> {
  const host = currentHostAdapter();
  const layout = stickLayout(stickRoot);
  const fingerprint = await hostFingerprint(layout.hostSalt);
  const plan = await planAccelerators(accelerator, await host.probeAccelerators(), new AcceleratorVerdicts(layout.acceleratorVerdicts, fingerprint));
  const memory = await host
    .probe()
    .memory()
    .catch(() => ({ totalMiB: Math.floor(totalmem() / 1048576), availableMiB: Math.floor(freemem() / 1048576) }));
  return {
    qemuVersion: await probeQemuVersion(findQemu(host, stickRoot)),
    accelerators: plan.candidates,
    memory: { totalMiB: memory.totalMiB, availableMiB: memory.availableMiB },
    fingerprint,
  };
}
