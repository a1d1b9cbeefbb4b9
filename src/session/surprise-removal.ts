// What happens when the stick is pulled out while its guest runs. The
// presence monitor (src/stick/presence-monitor.ts) says so; then, at once:
//
//   1. QEMU is killed (SIGKILL). Its disk, logs and payload are on a device
//      that is gone: there is nothing left it could flush, and a polite
//      shutdown would only wait on I/O that cannot land.
//   2. The host side is torn down as usual (control directory, timers,
//      channel services, child processes) but nothing more is written to the
//      stick: the lock is let go in memory only, and the launcher's own
//      output, if it went to a log on the stick, is pointed at the null device.
//   3. The person is told one line: what happened and what was protected.
//
// What was protected is what the guest had flushed: the personal disk's
// blockdev passes guest flushes through to the stick (cache.direct=off,
// cache.no-flush=off), so everything the guest fsync'd before the removal is
// on the stick, and the next launch checks the rest (src/session/crash-recovery.ts).
// To say *when* that was, QEMU's block statistics are sampled every second and
// the last time the flush count moved is remembered.
import { closeSync, fstatSync, openSync } from 'node:fs';
import { devNull } from 'node:os';
import { StickRemovedError } from '../errors.ts';
import { type PresenceOptions, PresenceMonitor, type RemovalEvent, type StickHints } from '../stick/presence-monitor.ts';
import type { PresenceSignal } from '../stick/presence-source.ts';
import type { QmpClient } from '../vmm/qmp-client.ts';

export interface StickRemoval {
  signal: PresenceSignal;
  /** The presence source that saw it first (io, usb, drivelist). */
  source: string;
  detail: string;
  firstEvidenceAt: string;
  detectedAt: string;
  /** While booting, or with the guest up. */
  phase: 'boot' | 'running';
  /** The last time the guest's disk flush count was seen to move, if it was. */
  lastFlushAt?: string;
  /** Milliseconds from detection to QEMU's exit being seen (known after teardown). */
  qemuGoneMs?: number;
  /** The one line a person is told. */
  message: string;
}

function clock(at: Date): string {
  return at.toTimeString().slice(0, 8);
}

/** The one line: what happened, what was protected, what to do. */
export function removalMessage(options: { hasDisk: boolean; lastFlushAt?: Date; phase: StickRemoval['phase'] }): string {
  const stopped = options.phase === 'boot' ? 'the guest was stopped while it booted' : 'the guest was stopped';
  if (!options.hasDisk) return `the stick was removed; ${stopped}; plug the stick back in and run launcher again`;
  const flushed = options.lastFlushAt ? `was last flushed at ${clock(options.lastFlushAt)}` : 'had not been flushed by the guest yet in this session';
  return `the stick was removed; ${stopped}; your disk is encrypted and ${flushed}; plug the stick back in and run launcher again to check it`;
}

/**
 * A descriptor of ours that pointed at a file on the stick (a detached
 * session's log) now fails every call; Node itself checks stdio at exit and
 * aborts on such an error (a core dump is the last thing the host should
 * get). Those descriptors are re-pointed at the null device.
 */
export function detachStdioFromDeadDevice(): number[] {
  const moved: number[] = [];
  for (const fd of [0, 1, 2]) {
    try {
      fstatSync(fd);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EBADF') continue;
      try {
        closeSync(fd);
        // The lowest free descriptor is the one just closed.
        const reopened = openSync(devNull, fd === 0 ? 'r' : 'w');
        if (reopened !== fd) closeSync(reopened);
        else moved.push(fd);
      } catch {
        // nothing better to do: the descriptor stays closed (EBADF is fine at exit)
      }
    }
  }
  return moved;
}

interface BlockStats {
  stats?: { flush_operations?: number };
}

/** Samples QEMU's flush counters; remembers when they last moved. */
class FlushTracker {
  lastFlushAt: Date | undefined;
  #last = -1;
  #timer: NodeJS.Timeout;
  #inFlight = false;

  constructor(qmp: QmpClient, intervalMs: number) {
    this.#timer = setInterval(() => {
      if (this.#inFlight || qmp.isClosed) return;
      this.#inFlight = true;
      qmp
        .execute<BlockStats[]>('query-blockstats', undefined, { timeoutMs: intervalMs * 2 })
        .then((devices) => {
          const flushes = devices.reduce((sum, device) => sum + (device.stats?.flush_operations ?? 0), 0);
          if (this.#last >= 0 && flushes > this.#last) this.lastFlushAt = new Date();
          this.#last = flushes;
        })
        .catch(() => {})
        .finally(() => {
          this.#inFlight = false;
        });
    }, intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** The host probe's stick facts (HostProfile.stick), as the presence monitor's hints. */
export function stickHints(
  stick:
    | {
        kind?: string;
        mountpoint?: string | null;
        drive?: { device: string } | null;
        usbIdentity?: { vendorId: string; productId: string; serial?: string | null } | null;
      }
    | null
    | undefined,
): StickHints | undefined {
  if (!stick) return undefined;
  const usb = stick.usbIdentity;
  return {
    ...(stick.kind ? { kind: stick.kind } : {}),
    ...(stick.drive && stick.mountpoint ? { drive: { device: stick.drive.device, mountpoint: stick.mountpoint } } : {}),
    ...(usb ? { usb: { vendorId: parseInt(usb.vendorId, 16), productId: parseInt(usb.productId, 16), ...(usb.serial ? { serial: usb.serial } : {}) } } : {}),
  };
}

export interface RemovalGuardOptions extends PresenceOptions {
  /** How often QEMU's flush counters are sampled (ms). */
  flushSampleMs?: number;
}

/** What the guard needs of a running session: its QEMU, and whether a user's disk is at risk. */
export interface GuardedSession {
  readonly machine: { readonly qmp: QmpClient; kill(): void; readonly process: { readonly exited: Promise<unknown> } };
  /** The logged-in user, if any (the message then says what of their disk was protected). */
  readonly user: string | undefined;
}

/**
 * Watches the stick from the moment the lock is taken: during boot a removal
 * aborts the boot (`signal`); once the session exists, `protect` makes a
 * removal stop it.
 */
export class RemovalGuard {
  readonly monitor: PresenceMonitor;
  readonly #abort = new AbortController();
  readonly #options: RemovalGuardOptions;
  #flush: FlushTracker | undefined;
  #session: GuardedSession | undefined;
  #removal: StickRemoval | undefined;

  private constructor(monitor: PresenceMonitor, options: RemovalGuardOptions) {
    this.monitor = monitor;
    this.#options = options;
    monitor.once('removed', (event) => this.#onRemoved(event));
  }

  static async start(root: string, options: RemovalGuardOptions = {}): Promise<RemovalGuard> {
    return new RemovalGuard(await PresenceMonitor.start(root, options), options);
  }

  /** Aborted when the stick is found removed. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  get removed(): RemovalEvent | undefined {
    return this.monitor.removal;
  }

  /** Set once a removal stopped the protected session: teardown then writes nothing to the stick. */
  get removal(): StickRemoval | undefined {
    return this.#removal;
  }

  /** For a removal before the session existed: the error to fail the launch with. */
  bootError(hasDisk: boolean): StickRemovedError {
    const removal = this.#report(this.monitor.removal!, 'boot', hasDisk);
    return new StickRemovedError(removal.message, { removal });
  }

  #report(event: RemovalEvent, phase: StickRemoval['phase'], hasDisk: boolean): StickRemoval {
    const lastFlushAt = this.#flush?.lastFlushAt;
    return {
      signal: event.signal,
      source: event.source,
      detail: event.detail,
      firstEvidenceAt: new Date(event.firstEvidenceAt).toISOString(),
      detectedAt: new Date(event.confirmedAt).toISOString(),
      phase,
      ...(lastFlushAt ? { lastFlushAt: lastFlushAt.toISOString() } : {}),
      message: removalMessage({ hasDisk, phase, ...(lastFlushAt ? { lastFlushAt } : {}) }),
    };
  }

  /** From now on a removal stops this session (whoever started the guard stops it at teardown). */
  protect(session: GuardedSession): void {
    this.#session = session;
    this.#flush = new FlushTracker(session.machine.qmp, this.#options.flushSampleMs ?? 1_000);
    if (this.monitor.removal) this.#onRemoved(this.monitor.removal);
  }

  #onRemoved(event: RemovalEvent): void {
    detachStdioFromDeadDevice();
    this.#abort.abort(new StickRemovedError('the stick was removed'));
    const session = this.#session;
    if (!session || this.#removal) return;
    const removal = this.#report(event, 'running', session.user !== undefined);
    this.#removal = removal;
    this.#flush?.stop();
    session.machine.kill();
    void session.machine.process.exited.then(() => {
      removal.qemuGoneMs = Math.round(performance.now() - event.confirmedMonotonic);
    });
  }

  stop(): void {
    this.#flush?.stop();
    this.monitor.stop();
  }
}
