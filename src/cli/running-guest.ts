// `--guest NAME` on the commands that reach a running session (exec, status,
// stop, eject). Several guests may run from a stick at once, each with its own
// session lock (src/stick/session-locks.ts): with --guest the command reaches
// that guest's session; without it, the one that runs; with several running, a
// command that needs one is refused with their names (exit 33) and `status`
// and `eject` act on them all.
import { NoSessionError, PocketError, SeveralGuestsError } from '../errors.ts';
import type { StickLayout } from '../stick/layout.ts';
import { processAlive, readLock } from '../stick/lock.ts';
import { guestSessionLayout, liveSessions, readSessions, type SessionLock } from '../stick/session-locks.ts';

/** What a command found: the live sessions it acts on, or the lock a dead session left (for `status` to say so). */
export interface FoundSessions {
  live: SessionLock[];
  /** With nothing live: the asked guest's (or the default guest's) lock left by a launcher that died. */
  stale?: SessionLock;
}

/**
 * The sessions a command acts on: the one of `wanted`, or every live one.
 * Another guest's name than the ones running is refused (exit 8, naming
 * them), never applied to one of them.
 */
export async function findSessions(layout: StickLayout, wanted: string | undefined, command: string): Promise<FoundSessions> {
  if (wanted !== undefined) {
    const scoped = guestSessionLayout(layout, wanted);
    const holder = await readLock(scoped);
    const own = holder ? (await readSessions(layout)).find((session) => session.layout.lockFile === scoped.lockFile) : undefined;
    if (own?.live) return { live: [own] };
    const others = await liveSessions(layout);
    if (others.length > 0) throw notRunning(wanted, others, layout.root, command);
    return own ? { live: [], stale: own } : { live: [] };
  }
  const all = await readSessions(layout);
  const live = all.filter((session) => session.live);
  if (live.length > 0) return { live };
  const stale = all.find((session) => !session.live);
  return stale ? { live: [], stale } : { live: [] };
}

/** The one session a command acts on (exec, stop): several running need --guest (exit 33); none is exit 8. */
export async function findOneSession(layout: StickLayout, wanted: string | undefined, command: string): Promise<SessionLock> {
  const found = await findSessions(layout, wanted, command);
  const [first, ...rest] = found.live;
  if (!first) throw new NoSessionError(layout.root);
  if (rest.length > 0)
    throw new SeveralGuestsError(
      command,
      found.live.map((session) => session.guest),
      layout.root,
    );
  return first;
}

function notRunning(wanted: string, running: readonly SessionLock[], stickRoot: string, command: string): PocketError {
  const names = running.map((session) => session.guest);
  return new PocketError('noSession', `no guest "${wanted}" is running from ${stickRoot}; ${names.join(', ')} ${names.length === 1 ? 'is' : 'are'}`, {
    hint: `launcher ${command} --guest ${names[0]}`,
    details: { running: names.length === 1 ? names[0] : names, guest: wanted },
  });
}

/** Whether a session process (pid) has exited within `timeoutMs`: it lets go of the stick last. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (processAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}
