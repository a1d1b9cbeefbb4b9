// A watchdog for one virtio network card's transmit queue in QEMU.
//
// QEMU 7.2's virtio-net (transmit in a bottom half, `-netdev socket`) can
// stop taking a card's transmit queue: the guest has put a frame in the
// ring and notified, yet QEMU never looks at it (its queue status shows
// last-avail-idx behind the ring's avail index, nothing in flight). With
// event indexes the guest does not notify again, so every later frame waits
// behind it and the namespace's mount hangs for good. Seen in bench/ninep
// (2026-12-07): a guest loop of 10,000 creates on /host stopped after
// 8,359, the launcher idle with every request it had received answered
// (ring avail 58520, QEMU's last-avail-idx 58519, then 58521 behind it for
// a second mount's request). The guest's notification was lost: `set_link
// CARD up` did not help, a pause and resume did (on resume QEMU notifies
// every queue itself, "to begin processing requests already in vring").
// The card now takes notifications without the event notifier
// (ioeventfd=off, qemu-args.ts), which is where the loss was likely; this
// watchdog stays for any other way to lose one.
//
// The watchdog looks only while the card is quiet (no frame received since
// the last look), once every intervalMs: QEMU's queue status and, when
// nothing is in flight there, the ring's avail index in guest memory. A
// frame QEMU has not taken on two looks in a row is a stall: it gets the
// nudge (`stop` and `cont` back to back, a pause of a few milliseconds),
// counted and logged. Never while the launcher itself holds the guest
// paused: the watchdog is a guest-life participant (src/vmm/guest-life.ts)
// and does nothing from a suspend's quiesce until its resume, nor when QEMU
// says the guest is not running (a full stick's pause). A QEMU without
// these commands (the x- one is unstable) turns the watchdog off.
import type { GuestLifeParticipant } from './guest-life.ts';
import { QmpCommandError } from './qmp-client.ts';

/** What the watchdog asks of QEMU (a QmpClient). */
export interface WatchdogQmp {
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T>;
}

export interface NicTxWatchdogOptions {
  /** The card's device id (`-device virtio-net-pci,id=...`). */
  nicId: string;
  /** Frames the launcher has received from the card so far: a change means it is not stalled. */
  activity: () => number;
  log?: (message: string) => void;
  /** Between looks (default 1 s). */
  intervalMs?: number;
}

export interface NicTxWatchdog extends GuestLifeParticipant {
  /** Looks taken at QEMU's queue, and stalls nudged. */
  readonly counters: { looks: number; nudges: number };
  stop(): void;
}

interface QueueStatus {
  'last-avail-idx': number;
  inuse: number;
  'vring-avail': number;
}

/** The transmit queue of a virtio-net card without multiqueue. */
const TX_QUEUE = 1;
const DEFAULT_INTERVAL_MS = 1_000;

/** The 16-bit avail index at `address + 2` (the avail ring's idx), read through the monitor. */
async function readAvailIdx(qmp: WatchdogQmp, vringAvail: number): Promise<number> {
  const out = await qmp.execute<string>('human-monitor-command', { 'command-line': `xp /1hx ${vringAvail + 2}` });
  const match = / (0x[0-9a-f]+)\s*$/i.exec(out);
  if (!match) throw new Error(`unexpected xp output: ${out.trim()}`);
  return Number(match[1]) & 0xffff;
}

export function watchNicTransmit(qmp: WatchdogQmp, options: NicTxWatchdogOptions): NicTxWatchdog {
  const counters = { looks: 0, nudges: 0 };
  const path = `/machine/peripheral/${options.nicId}/virtio-backend`;
  let lastActivity = options.activity();
  /** The frame index QEMU had not taken at the last look (a candidate stall), if any. */
  let waitingAt: number | undefined;
  let busy = false;
  let stopped = false;
  /** A suspend is under way (quiesce until resume): the launcher's own pause is not touched. */
  let held = false;

  const look = async (): Promise<void> => {
    if (held) return;
    const activity = options.activity();
    if (activity !== lastActivity) {
      // Frames are coming: whatever QEMU had not taken, it is taking.
      lastActivity = activity;
      waitingAt = undefined;
      return;
    }
    counters.looks++;
    const status = await qmp.execute<QueueStatus>('x-query-virtio-queue-status', { path, queue: TX_QUEUE });
    const taken = status['last-avail-idx'] & 0xffff;
    // A queue the guest's driver has not set up yet (at boot: no ring address) has nothing waiting; a
    // frame in flight in QEMU (sent to the backend, not finished) is not a stall of this kind.
    const pending = status['vring-avail'] !== 0 && status.inuse === 0 && (await readAvailIdx(qmp, status['vring-avail'])) !== taken;
    if (!pending) {
      waitingAt = undefined;
      return;
    }
    if (waitingAt !== taken) {
      waitingAt = taken;
      return;
    }
    // The same frame untaken on two looks, the card quiet between them.
    waitingAt = undefined;
    const run = await qmp.execute<{ running: boolean }>('query-status');
    if (!run.running || held) return;
    counters.nudges++;
    options.log?.(`the ${options.nicId} card's transmit queue stalled in QEMU (frame ${taken} not taken); nudged it (stop, cont)`);
    // Written in one turn of the event loop: no other command of this launcher's goes between them.
    await Promise.all([qmp.execute('stop'), qmp.execute('cont')]);
  };

  const timer = setInterval(() => {
    if (busy || stopped) return;
    busy = true;
    look()
      .catch((error: unknown) => {
        if (error instanceof QmpCommandError && error.errorClass === 'CommandNotFound') {
          options.log?.(`the ${options.nicId} card's transmit watchdog is off: this QEMU has no ${error.command}`);
          stop();
        }
        // Anything else (QEMU going away, a paused monitor): the next look tries again.
      })
      .finally(() => {
        busy = false;
      });
  }, options.intervalMs ?? DEFAULT_INTERVAL_MS);
  // Never what keeps the launcher running.
  timer.unref();

  function stop(): void {
    stopped = true;
    clearInterval(timer);
  }
  return {
    counters,
    stop,
    retire: async () => {
      waitingAt = undefined;
    },
    quiesce: async () => {
      held = true;
      waitingAt = undefined;
    },
    resume: () => {
      held = false;
    },
  };
}
