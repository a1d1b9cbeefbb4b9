// `launcher eject --suspend`, in the session: the running guest's whole state
// (memory and devices) to users/<name>/state/<guest>.vmstate, sealed under
// the user's state key (src/auth/state-key.ts, src/vmm/state-cipher.ts).
//
//   the guest syncs its file systems (agent; best effort)
//   → QMP stop (QEMU drains and flushes the disk)
//   → migrate to a launcher-only socket → sealed chunks → <guest>.vmstate.partial
//   → fsync, rename to <guest>.vmstate, fsync the folder
//   → only then QEMU quits (Session.suspend), and teardown releases the stick.
//
// Anything failing before the rename leaves no file and the guest running on
// (`cont`), so a suspend that cannot finish costs nothing.
import { failpoint } from '../primitives/failpoint.ts';
import { type FileHandle, mkdir, open, rename, rm, statfs } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PocketError, SavedStateError, StickError, UsageError } from '../errors.ts';
import { currentHostAdapter } from '../hostprobe/current-host.ts';
import type { Machine } from '../vmm/machine.ts';
import { cancelMigration, listenForMigration, migrateOut, qemuVersionString, resolvedMachineType } from '../vmm/migration.ts';
import type { ShutdownResult } from '../vmm/shutdown-ladder.ts';
import { StateSealer } from '../vmm/state-cipher.ts';
import type { DiskGeneration } from './disk-generation.ts';
import { syncDirectory } from '../primitives/atomic-replace.ts';
import { savedStatePaths, VMSTATE_FORMAT, type VmStateMeta } from './saved-state.ts';
import type { StickLayout } from '../stick/layout.ts';
import type { StickLock } from '../stick/lock.ts';

/** FAT32's largest file. A guest whose state could outgrow it is not suspended (no splitting). */
export const MAX_STATE_FILE_BYTES = 4 * 1024 ** 3 - 1;
/** Device state and framing on top of guest memory, generously. */
const STATE_OVERHEAD_BYTES = 64 * 1024 ** 2;
const SAVE_TIMEOUT_MS = 10 * 60_000;
const GUEST_SYNC_TIMEOUT_MS = 30_000;

/** What a session keeps from the login to be able to suspend (the disk key itself is gone). */
export interface StateContext {
  /** deriveStateKey(disk key): opens and seals this user's saved states only. */
  key: Buffer;
  user: string;
  userId: string;
  /** This PC's salted fingerprint, recorded in the header. */
  host: string | null;
  /** The personal disk's generation of this run (src/session/disk-generation.ts), recorded in the header. */
  diskGeneration?: DiskGeneration;
}

export interface SuspendResult {
  guest: string;
  user: string;
  file: string;
  /** The state file's size. */
  bytes: number;
  memoryMiB: number;
  /** The guest's own `sync` before it was stopped. */
  syncMs: number;
  /** QMP stop → the state file durable (fsync'd, renamed, folder fsync'd). */
  saveMs: number;
  /** QEMU's quit after that. */
  quitMs: number;
  /** The whole suspend as the session saw it. */
  totalMs: number;
}

function worstCaseBytes(memoryMiB: number): number {
  return memoryMiB * 1024 ** 2 + STATE_OVERHEAD_BYTES;
}

async function checkRoom(stickRoot: string, memoryMiB: number): Promise<void> {
  const needed = worstCaseBytes(memoryMiB);
  if (needed > MAX_STATE_FILE_BYTES) {
    throw new SavedStateError(`a guest with ${memoryMiB} MiB of memory cannot be suspended: its state could exceed 4 GiB, the largest file a FAT stick holds`, {
      hint: 'shut it down instead (launcher eject), or give it less memory (registry Machine\\MemoryMiB)',
      details: { reason: 'too-big', memoryMiB },
    });
  }
  const fs = await statfs(stickRoot).catch(() => undefined);
  if (fs && fs.bavail * fs.bsize < needed) {
    const free = Math.floor((fs.bavail * fs.bsize) / 1024 ** 2);
    throw new StickError(
      `the stick is too full to suspend: the state needs up to ${Math.ceil(needed / 1024 ** 2)} MiB and ${free} MiB are free`,
      'free some space on the stick, or shut the guest down instead (launcher eject)',
    );
  }
}

async function checkStateQuota(layout: StickLayout, user: string, guest: string, memoryMiB: number): Promise<void> {
  const { readUserQuota } = await import('./user-quotas.ts');
  const quotaMiB = (await readUserQuota(layout, user)).diskMiB;
  if (quotaMiB === undefined) return;
  const { checkDiskQuota } = await import('./disk-usage.ts');
  await checkDiskQuota({ layout, user, quotaMiB, adding: [{ what: `a saved state`, bytes: worstCaseBytes(memoryMiB) }], doing: `suspending ${guest}` });
}

async function guestSync(machine: Pick<Machine, 'agent'>): Promise<number> {
  const started = performance.now();
  // What the guest has written reaches its disk even if the state is later
  // set aside for a cold boot. The state alone would be consistent without it.
  await machine.agent.run('/bin/sync', [], { timeoutMs: GUEST_SYNC_TIMEOUT_MS }).catch(() => {});
  return Math.round(performance.now() - started);
}

/** What saving a guest's state needs of its session (src/session/session.ts is one). */
export interface SuspendTarget {
  readonly guest: string;
  readonly layout: StickLayout;
  readonly machine: Pick<Machine, 'spec' | 'qmp' | 'process' | 'agent' | 'life'>;
  readonly lock: Pick<StickLock, 'update'>;
}

/** Saves the guest's state; leaves QEMU paused with the state durable on the stick. */
export async function saveGuestState(session: SuspendTarget, context: StateContext): Promise<Omit<SuspendResult, 'quitMs' | 'totalMs'>> {
  const { machine, layout } = session;
  const { spec, qmp } = machine;
  if (!machine.process.running) throw new PocketError('noSession', `${session.guest} is not running`);
  const privateDir = (await currentHostAdapter().controlEndpoint()).privateDir;
  if (!privateDir) throw new UsageError('suspending is not supported on this kind of host yet', 'launcher eject shuts the guest down instead');
  const paths = savedStatePaths(layout, context.user, session.guest);
  let syncMs: number;
  let started: number;
  let socket: Awaited<ReturnType<typeof listenForMigration>>;
  try {
    await checkRoom(layout.root, spec.memoryMiB);
    // The user's disk quota (docs/guests.md, "Per-user quotas"): the state is a growth of what their guests hold; refused, the guest runs on.
    await checkStateQuota(layout, context.user, session.guest, spec.memoryMiB);
    await mkdir(paths.dir, { recursive: true });
    await rm(paths.partial, { force: true });

    syncMs = await guestSync(machine);
    await session.lock.update({ state: 'stopping' }).catch(() => {});
    started = performance.now();
    // Placed 9P reads write guest RAM where QEMU's dirty log cannot see them:
    // they finish, and no more start, before the vCPUs stop and RAM is copied.
    await machine.life.quiesce();
    await qmp.stop().catch((error: unknown) => {
      machine.life.resume();
      throw error;
    });
    socket = await listenForMigration(privateDir);
  } catch (error) {
    // Until the migration socket owns it (its close removes it), the private
    // folder is ours to remove: a refused suspend leaves nothing on the host.
    await rm(privateDir, { recursive: true, force: true });
    throw error;
  }
  let sealer: StateSealer | undefined;
  try {
    const meta: VmStateMeta = {
      format: VMSTATE_FORMAT,
      guest: session.guest,
      user: context.user,
      userId: context.userId,
      createdAt: new Date().toISOString(),
      host: context.host,
      qemu: qemuVersionString(qmp.greeting.version),
      machineType: await resolvedMachineType(qmp),
      cpuModel: spec.cpuModel ?? '',
      accelerator: spec.accelerator,
      memoryMiB: spec.memoryMiB,
      cpus: spec.cpus,
      ...(context.diskGeneration ? { diskGeneration: context.diskGeneration } : {}),
    };
    const seal = new StateSealer(context.key, meta, { maxFileBytes: MAX_STATE_FILE_BYTES });
    sealer = seal;
    const file = await open(paths.partial, 'w');
    const written = socket.connection.then((connection) => pipeline(connection, seal, new DurableFileWriter(file))).finally(() => file.close());
    written.catch(() => {});
    try {
      await migrateOut(qmp, socket.uri, { timeoutMs: SAVE_TIMEOUT_MS });
      await written;
    } catch (error) {
      // A write that failed first (stick full, too big) explains a migration that failed after it.
      const writeError = await Promise.race([
        written.then(
          () => undefined,
          (e: unknown) => e,
        ),
        new Promise((r) => setTimeout(r, 500, undefined)),
      ]);
      throw writeError instanceof PocketError ? writeError : error;
    }
    await rename(paths.partial, paths.file);
    await syncDirectory(paths.dir);
    failpoint('suspend:saved');
    return {
      guest: session.guest,
      user: context.user,
      file: paths.file,
      bytes: seal.fileBytes,
      memoryMiB: spec.memoryMiB,
      syncMs,
      saveMs: Math.round(performance.now() - started),
    };
  } catch (error) {
    sealer?.destroy();
    await cancelMigration(qmp);
    await rm(paths.partial, { force: true }).catch(() => {});
    // The guest goes on as if nothing happened (cont re-activates its disk).
    if (machine.process.running) await qmp.cont().catch(() => {});
    machine.life.resume();
    await session.lock.update({ state: 'ready' }).catch(() => {});
    throw error;
  } finally {
    await socket.close();
  }
}

/**
 * Writes a file and makes it durable, with the device writing while more is
 * still being sealed: every WRITEBACK_BYTES a datasync starts in the
 * background (one at a time), so the final fsync has little left to flush
 * instead of the whole state at once.
 */
const WRITEBACK_BYTES = 32 << 20;

class DurableFileWriter extends Writable {
  readonly #file: FileHandle;
  #sinceSync = 0;
  #syncing: Promise<void> = Promise.resolve();

  constructor(file: FileHandle) {
    super({ highWaterMark: 8 << 20 });
    this.#file = file;
  }

  async #writeAll(buffers: Buffer[]): Promise<void> {
    const total = buffers.reduce((sum, buffer) => sum + buffer.length, 0);
    let written = (await this.#file.writev(buffers)).bytesWritten;
    if (written < total) {
      const rest = Buffer.concat(buffers).subarray(written);
      for (let at = 0; at < rest.length;) at += (await this.#file.write(rest, at)).bytesWritten;
      written = total;
    }
    this.#sinceSync += written;
    if (this.#sinceSync >= WRITEBACK_BYTES) {
      this.#sinceSync = 0;
      this.#syncing = this.#syncing.then(() => this.#file.datasync());
      // Seen by _final; handled here so a failure is not an unhandled rejection meanwhile.
      this.#syncing.catch(() => {});
    }
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.#writeAll(chunks.map((entry) => entry.chunk)).then(
      () => callback(),
      (error: unknown) => callback(stickWriteError(error)),
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#syncing
      .then(() => this.#file.sync())
      .then(
        () => callback(),
        (error: unknown) => callback(stickWriteError(error)),
      );
  }
}

function stickWriteError(error: unknown): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EFBIG' || code === 'EDQUOT')
    return new StickError(
      `the stick is full: the saved state could not be written (${code})`,
      'free some space on the stick, or shut the guest down instead (launcher eject)',
    );
  return error as Error;
}

/** QEMU's end once the state is safe: quit (the guest stays as saved), kill if it lingers. */
export async function quitAfterSave(machine: Machine, timeoutMs = 10_000): Promise<ShutdownResult> {
  const started = performance.now();
  await machine.qmp.quit().catch(() => {});
  const exit = await Promise.race([machine.process.exited, new Promise<undefined>((r) => setTimeout(r, timeoutMs, undefined).unref())]);
  if (exit) {
    const ms = Math.round(performance.now() - started);
    return { step: 'quit', ms, attempts: [{ step: 'quit', outcome: 'stopped', ms }], exit };
  }
  machine.kill();
  const killed = await machine.process.exited;
  const ms = Math.round(performance.now() - started);
  return {
    step: 'kill',
    ms,
    attempts: [
      { step: 'quit', outcome: 'timeout', ms: timeoutMs },
      { step: 'kill', outcome: 'stopped', ms: ms - timeoutMs },
    ],
    exit: killed,
  };
}
