// Several guests run from one stick at once (docs/guests.md, "Several at
// once"): each running guest holds its own session lock, so each has its own
// session, control channel and saved state. The default guest's lock is the
// stick lock of a stick from before (`run/lock.json`), so an existing stick and
// everything that reads that file keep working; any other guest's is
// `run/<guest>.lock.json`. Everything below the lock (its takeover, the
// recovery after a dead session, the control address it records) follows the
// lock file, so a session of one guest never touches another's.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PRIMARY_GUEST, type StickLayout } from './layout.ts';
import { isStale, type LockHolder, readLock } from './lock.ts';

const GUEST_LOCK = /^([a-z0-9][a-z0-9-]{0,31})\.lock\.json$/;

/** The session lock of `guest`'s session. */
export function sessionLockFile(layout: StickLayout, guest: string): string {
  return guest === PRIMARY_GUEST ? join(layout.runDir, 'lock.json') : join(layout.runDir, `${guest}.lock.json`);
}

/** The stick as one guest's session sees it: the same stick, with that guest's session lock as its lock. */
export function guestSessionLayout(layout: StickLayout, guest: string): StickLayout {
  return { ...layout, lockFile: sessionLockFile(stickOf(layout), guest) };
}

/** A session's layout back to the stick's own (its lock the default guest's). */
function stickOf(layout: StickLayout): StickLayout {
  return { ...layout, lockFile: join(layout.runDir, 'lock.json') };
}

export interface SessionLock {
  holder: LockHolder;
  /** The layout whose lock file is this session's (for the control client, cancelBoot, ...). */
  layout: StickLayout;
  /** The guest it runs (the lock's own word; the default guest for a stick-wide holder). */
  guest: string;
  live: boolean;
}

/** Every session lock on the stick, live or left by a dead launcher, default guest first. */
export async function readSessions(layout: StickLayout): Promise<SessionLock[]> {
  const stick = stickOf(layout);
  const found: SessionLock[] = [];
  const primary = await readLock(stick);
  if (primary) found.push({ holder: primary, layout: stick, guest: primary.guest ?? PRIMARY_GUEST, live: !isStale(primary) });
  let names: string[] = [];
  try {
    names = (await readdir(stick.runDir)).sort();
  } catch {
    return found;
  }
  for (const name of names) {
    const guest = GUEST_LOCK.exec(name)?.[1];
    if (guest === undefined || guest === PRIMARY_GUEST) continue;
    const scoped = guestSessionLayout(stick, guest);
    const holder = await readLock(scoped);
    if (holder) found.push({ holder, layout: scoped, guest: holder.guest ?? guest, live: !isStale(holder) });
  }
  return found;
}

/** The sessions running now. */
export async function liveSessions(layout: StickLayout): Promise<SessionLock[]> {
  return (await readSessions(layout)).filter((session) => session.live);
}
