// `launcher stop` during a boot: the session has no control server until its
// guest is ready, so it is told to stop the way a terminal would, with
// SIGTERM. Its launch then kills QEMU and releases the lock (nothing left for
// the next launch to recover); this waits until the lock is gone.
import { hostname } from 'node:os';
import { PocketError } from '../errors.ts';
import type { StickLayout } from '../stick/layout.ts';
import { isStale, type LockHolder, processAlive, readLock } from '../stick/lock.ts';

/** The boot has this long to wind down before the session is killed. */
const CANCEL_TIMEOUT_MS = 60_000;

export async function cancelBoot(layout: StickLayout, holder: LockHolder): Promise<{ step: 'cancel-boot' | 'kill-session'; pid: number; ms: number }> {
  if (holder.hostname !== hostname()) {
    throw new PocketError('stickLocked', `the guest on this stick is booting on another computer (${holder.hostname}); it can only be stopped there`);
  }
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  const stillHeld = async () => {
    const now = await readLock(layout);
    return now !== undefined && now.pid === holder.pid && now.startedAt === holder.startedAt && !isStale(now);
  };
  try {
    process.kill(holder.pid, 'SIGTERM');
  } catch {
    // Gone in between: nothing left to cancel.
    return { step: 'cancel-boot', pid: holder.pid, ms: ms() };
  }
  while (performance.now() - started < CANCEL_TIMEOUT_MS) {
    if (!(await stillHeld())) return { step: 'cancel-boot', pid: holder.pid, ms: ms() };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // It did not wind down: its QEMU dies with it (the session holds QEMU's lifeline).
  if (processAlive(holder.pid)) process.kill(holder.pid, 'SIGKILL');
  return { step: 'kill-session', pid: holder.pid, ms: ms() };
}
