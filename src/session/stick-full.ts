// A full stick while the guest runs. QEMU stops the guest when a write to the
// personal disk fails with ENOSPC (virtio-blk's default werror=enospc): the
// write is kept and retried on `cont`, so nothing is lost. Until now nobody
// said so. This watch tells the person once ("the stick is full: …", on the
// attached console's stderr and in `launcher status`), polls the free space
// while the guest is paused, and continues the guest once there is room.
//
// A suspend stops the guest too, and must find it stopped until its state is
// saved: the watch never continues a guest while a suspend is under way, and
// a suspend is refused while the guest is paused for a full stick (it could
// neither save its state nor be sure of a stopped guest).
import { StickError } from '../errors.ts';
import { freeBytes } from '../stick/free-space.ts';
import type { QmpClient, QmpEvent } from '../vmm/qmp-client.ts';

/** Free space at which a paused guest is continued: room for its pending writes and then some. */
export const CONTINUE_FREE_BYTES = 16 * 1024 ** 2;
const POLL_MS = 2_000;

export interface StickFullState {
  since: string;
  message: string;
}

const isNoSpace = (event: QmpEvent) => event.data['nospace'] === true;

/** What the watch needs of a session (src/session/session.ts). */
export interface WatchedSession {
  readonly machine: { readonly qmp: Pick<QmpClient, 'onEvent' | 'cont'> };
  readonly layout: { readonly root: string };
  stickFull: StickFullState | undefined;
  /** True while a suspend is saving the guest's state (it stopped the guest itself). */
  readonly suspending: boolean;
}

/** A suspend asked for while the guest is paused for a full stick is refused (exit 9). */
export function refuseSuspendWhileFull(session: Pick<WatchedSession, 'stickFull'>): void {
  if (!session.stickFull) return;
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

  const unsubscribe = qmp.onEvent((event) => {
    if (event.event !== 'BLOCK_IO_ERROR' || !isNoSpace(event) || session.stickFull || stopped) return;
    const message = 'the stick is full: the guest is paused so that nothing is lost; free some space on the stick and it continues by itself';
    session.stickFull = { since: new Date().toISOString(), message };
    notice(message);
    poll = setTimeout(() => void tryContinue(), POLL_MS).unref();
  });

  return () => {
    stopped = true;
    unsubscribe();
    if (poll) clearTimeout(poll);
  };
}
