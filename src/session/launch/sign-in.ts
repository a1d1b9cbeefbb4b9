// Launch step 4: the person signs in (unless the caller already did), the
// lock records who, and a session that did not end cleanly last time is
// checked (src/session/crash-recovery.ts) before anything of theirs is opened.
import type { UnlockedUser } from '../../auth/users.ts';
import type { StickLayout } from '../../stick/layout.ts';
import type { StickLock } from '../../stick/lock.ts';
import { markRecoveryPending, pendingRecovery, recoverAfterCrash, type RecoveryReport } from '../crash-recovery.ts';
import { interrupted, type LaunchContext } from './launch-context.ts';

export interface SignedIn {
  /** Undefined for a launch without a user (no personal disk, registry or namespace). */
  user: UnlockedUser | undefined;
  recovery: RecoveryReport | undefined;
}

/** `work`, or a rejection as soon as `signal` aborts (what `work` then yields is dropped). */
function untilCancelled<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(interrupted());
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export async function signIn(
  ctx: LaunchContext,
  stick: { layout: StickLayout; lock: StickLock },
  guard: { signal: AbortSignal } | undefined,
): Promise<SignedIn> {
  const { options, emit } = ctx;
  const { layout, lock } = stick;
  if (lock.takenOver) await markRecoveryPending(layout, lock.takenOver);
  ctx.checkCancelled();
  // The login waits on a person (or the foreground launcher): a cancel must not wait for it.
  if (!ctx.user && options.login) ctx.user = await untilCancelled(options.login(), options.signal);
  ctx.checkCancelled();
  const user = ctx.user;
  if (user) await lock.update({ user: user.name });
  let recovery: RecoveryReport | undefined;
  // The last session on this stick died (stale lock), or left this user's files unchecked.
  const previous = lock.takenOver ?? (user ? await pendingRecovery(layout, user.name) : undefined);
  if (previous) {
    emit({ stage: 'recovery', message: 'the last session on this stick did not end cleanly: checking what it left' });
    recovery = await recoverAfterCrash({
      layout,
      previous,
      guest: options.guest,
      host: ctx.host,
      ...(user ? { user } : {}),
      onStep: (message) => emit({ stage: 'recovery', message }),
    });
    emit({ stage: 'recovery', message: recovery.summary });
  }
  guard?.signal.throwIfAborted();
  ctx.checkCancelled();
  return { user, recovery };
}
