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
// It was not the only way. With ioeventfd=off a stall came back (bench/ninep,
// 2026-12-07, frame 55287 of the create loop) that the pause and resume did
// not clear, nudged every few seconds for a minute: QEMU's own copy of the
// avail index (shadow-avail-idx) was at the stalled frame, so it had not
// read the ring since the guest added it, and the avail event it had left
// for the guest asked for exactly that notification. A resume re-runs only
// a queue that has a transmit pass pending, which this one had not. What
// cleared it at once was a notification from the host: the queue's number
// written to the card's legacy queue-notify register (VIRTIO_PCI_QUEUE_NOTIFY,
// offset 16 of its I/O BAR), with the monitor's `o` command, which is the
// guest's own kick by another door. So the nudge is that kick first, and the
// pause and resume only when the queue has still not moved after it (a card
// without an I/O BAR, or a pass that is pending but never runs).
//
// The watchdog looks only while the card is quiet (no frame received since
// the last look), once every intervalMs (half a second): QEMU's queue
// status and, when nothing is in flight there, the ring's avail index in
// guest memory. A frame in the ring that QEMU has not taken, the card
// quiet, is a stall: it gets the kick above at once (harmless if QEMU did
// not need it), and when the next look finds the same frame still there,
// `stop` and `cont` back to back (a pause of a few milliseconds); each
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
  /** Between looks (default 500 ms). */
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
/** VIRTIO_PCI_QUEUE_NOTIFY: where a queue's number is written to notify it, in a transitional card's I/O BAR 0. */
const LEGACY_QUEUE_NOTIFY = 16;

/** What the watchdog reads of query-pci: a device, its BARs, and the devices behind it when it is a bridge. */
interface PciDevice {
  qdev_id?: string;
  regions?: Array<{ bar: number; type: string; address: number }>;
  pci_bridge?: { devices?: PciDevice[] };
}

/** The I/O port of the card's legacy queue-notify register, or undefined (no such card, no I/O BAR). */
async function notifyPort(qmp: WatchdogQmp, nicId: string): Promise<number | undefined> {
  const find = (devices: PciDevice[]): PciDevice | undefined => {
    for (const device of devices) {
      if (device.qdev_id === nicId) return device;
      const behind = device.pci_bridge?.devices && find(device.pci_bridge.devices);
      if (behind) return behind;
    }
    return undefined;
  };
  const buses = await qmp.execute<Array<{ devices?: PciDevice[] }>>('query-pci');
  for (const bus of buses) {
    const io = find(bus.devices ?? [])?.regions?.find((region) => region.bar === 0 && region.type === 'io');
    if (io) return io.address > 0 ? io.address + LEGACY_QUEUE_NOTIFY : undefined;
  }
  return undefined;
}

/**
 * Notifies the card's transmit queue from the host, as the guest's kick
 * would (the queue's number to its legacy queue-notify register, through
 * the monitor): QEMU then takes what the ring holds. False when the card
 * has no such register (no I/O BAR) or the monitor refused the write. A
 * notification with nothing new in the ring does nothing.
 */
export async function kickTransmitQueue(qmp: WatchdogQmp, nicId: string): Promise<boolean> {
  const port = await notifyPort(qmp, nicId);
  if (port === undefined) return false;
  const out = await qmp.execute<string>('human-monitor-command', { 'command-line': `o /w 0x${port.toString(16)} ${TX_QUEUE}` });
  // The monitor answers an I/O write with nothing; anything else is its complaint (no such command).
  return out.trim() === '';
}

/**
 * Half a second: /host freezes for up to about that long before the kick
 * (bench/ninep met five stalls in one run of its lines). A look is a QMP
 * command or two, and only on a card that is quiet.
 */
const DEFAULT_INTERVAL_MS = 500;

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
    const run = await qmp.execute<{ running: boolean }>('query-status');
    if (!run.running || held) return;
    const stalled = `the ${options.nicId} card's transmit queue stalled in QEMU (frame ${taken} not taken)`;
    if (waitingAt !== taken) {
      // A frame in the ring with the card quiet since the last look: the kick at once (a notification
      // QEMU did not need does nothing), the pause and resume at the next look if it did not move.
      waitingAt = taken;
      const kicked = await kickTransmitQueue(qmp, options.nicId).catch(() => false);
      if (!kicked) return;
      const after = await qmp.execute<QueueStatus>('x-query-virtio-queue-status', { path, queue: TX_QUEUE });
      if ((after['last-avail-idx'] & 0xffff) === taken && after.inuse === 0) return;
      waitingAt = undefined;
      counters.nudges++;
      options.log?.(`${stalled}; kicked its queue from the host`);
      return;
    }
    // The same frame untaken on two looks, the card quiet between them, the kick (if any) in vain.
    waitingAt = undefined;
    counters.nudges++;
    options.log?.(`${stalled}; paused and resumed the guest (stop, cont)`);
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
