// A full or failing stick while the guest runs. The personal disk is plugged
// in with werror=stop,rerror=stop (src/vmm/encrypted-disk.ts): when a write or
// read of it fails, QEMU stops the guest and keeps the request, which it
// retries on `cont`, so nothing is lost. This watch tells the person once
// (on the attached console's stderr and in `launcher status`) and continues
// the guest when that can work:
// - ENOSPC ("the stick is full: …"): polls the free space while the guest is
//   paused and continues it once there is room;
// - any other error (a flaky stick or port): retries every few seconds; a
//   stick that is gone is the presence monitor's (surprise-removal.ts).
//
// A suspend stops the guest too, and must find it stopped until its state is
// saved: the watch never continues a guest while a suspend is under way, and
// a suspend is refused while the guest is paused on the stick (it could
// neither save its state nor be sure of a stopped guest).
import { StickError } from '../errors.ts';
import { freeBytes } from '../stick/free-space.ts';
import type { QmpClient, QmpEvent } from '../vmm/qmp-client.ts';

/** Free space at which a paused guest is continued: room for its pending writes and then some. */
export const CONTINUE_FREE_BYTES = 16 * 1024 ** 2;
const POLL_MS = 2_000;
/** How long a guest paused on an I/O error waits before the request is tried again. */
export const IO_RETRY_MS = 5_000;

export interface StickFullState {
  since: string;
  message: string;
  /** ENOSPC (true) or another I/O error of the personal disk (false). */
  full?: boolean;
}

const isNoSpace = (event: QmpEvent) => event.data['nospace'] === true;
/** The guest was stopped on it (werror/rerror=stop); `report` and `ignore` leave it running. */
const stoppedOn = (event: QmpEvent) => event.event === 'BLOCK_IO_ERROR' && event.data['action'] === 'stop';

/** The one line for an I/O error that paused the guest. */
export function ioErrorMessage(event: QmpEvent): string {
  const operation = event.data['operation'] === 'read' ? 'read' : 'write';
  const reason = typeof event.data['reason'] === 'string' && event.data['reason'] !== '' ? ` (${event.data['reason']})` : '';
  return `the stick failed a ${operation} of the personal disk${reason}: the guest is paused so that nothing is lost and tries again every ${IO_RETRY_MS / 1000} s; check the stick and its port`;
}

/** What the watch needs of a session (src/session/session.ts). */
export interface WatchedSession {
  readonly machine: { readonly qmp: Pick<QmpClient, 'onEvent' | 'cont'> };
  readonly layout: { readonly root: string };
  stickFull: StickFullState | undefined;
  /** True while a suspend is saving the guest's state (it stopped the guest itself). */
  readonly suspending: boolean;
}

/** A suspend asked for while the guest is paused on the stick is refused (exit 9). */
export function refuseSuspendWhileFull(session: Pick<WatchedSession, 'stickFull'>): void {
  if (!session.stickFull) return;
  if (session.stickFull.full === false) {
    throw new StickError(
      'the stick failed an I/O request: the guest is paused until it succeeds, and cannot be suspended meanwhile',
      'check the stick and its port (the guest then continues by itself) and suspend again, or shut it down (launcher eject)',
    );
  }
  throw new StickError(
    'the stick is full: the guest is paused until there is room, and cannot be suspended meanwhile',
    'free some space on the stick (the guest then continues by itself) and suspend again, or shut it down (launcher eject)',
  );
}

/** Starts watching; the returned function stops it (at teardown). */
export function watchStickFull(session: WatchedSession, notice: (message: string) => void): () => void {
  const { qmp } = session.machine;
  let poll: NodeJS.Timeout | undefined;
  let stopped = false;
  /** An I/O error was announced: a retry that fails again stays quiet (status still shows it). */
  let ioErrorTold = false;

  const tryContinue = async () => {
    poll = undefined;
    if (stopped || !session.stickFull) return;
    // A suspend under way stopped the guest itself and is saving it: not continued under it.
    const free = session.suspending ? undefined : await freeBytes(session.layout.root);
    if (free !== undefined && free >= CONTINUE_FREE_BYTES && !session.suspending) {
      try {
        await qmp.cont();
        session.stickFull = undefined;
        notice(`space on the stick again (${Math.floor(free / 1024 ** 2)} MiB free): the guest continues`);
        return;
      } catch {
        // QEMU is going away, or refused: keep the state and try again.
      }
    }
    if (!stopped) poll = setTimeout(() => void tryContinue(), POLL_MS).unref();
  };

  const retryAfterError = async () => {
    poll = undefined;
    if (stopped || !session.stickFull) return;
    if (session.suspending) {
      poll = setTimeout(() => void retryAfterError(), IO_RETRY_MS).unref();
      return;
    }
    session.stickFull = undefined;
    try {
      // QEMU retries the failed request; if it fails again, a new BLOCK_IO_ERROR pauses the guest again.
      await qmp.cont();
    } catch {
      // QEMU is going away.
    }
  };

  const unsubscribe = qmp.onEvent((event) => {
    if (!stoppedOn(event) || session.stickFull || stopped) return;
    if (isNoSpace(event)) {
      const message = 'the stick is full: the guest is paused so that nothing is lost; free some space on the stick and it continues by itself';
      session.stickFull = { since: new Date().toISOString(), message, full: true };
      notice(message);
      poll = setTimeout(() => void tryContinue(), POLL_MS).unref();
      return;
    }
    const message = ioErrorMessage(event);
    session.stickFull = { since: new Date().toISOString(), message, full: false };
    if (!ioErrorTold) notice(message);
    ioErrorTold = true;
    poll = setTimeout(() => void retryAfterError(), IO_RETRY_MS).unref();
  });

  return () => {
    stopped = true;
    unsubscribe();
    if (poll) clearTimeout(poll);
  };
}
