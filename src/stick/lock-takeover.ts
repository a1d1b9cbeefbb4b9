// Who holds a lock file made with O_EXCL (a guest's change lock, the sizing
// lock), and how a dead holder's lock is removed without removing the lock a
// live launcher has just taken.
import { hostname } from 'node:os';
import { open, rm, stat } from 'node:fs/promises';
import { readJson } from '../primitives/read-json.ts';
import { processStartTicks } from '../primitives/process-start.ts';
import { isStale, type LockHolder } from './lock.ts';

/** Who holds a lock (changes a guest, sizes one): enough to tell a live launcher from a dead one (stick/lock.ts isStale). */
export type Actor = Pick<LockHolder, 'pid' | 'hostname' | 'startedAt' | 'processStart'> & { command: string };

export function me(command: string): Actor {
  const processStart = processStartTicks(process.pid);
  return { pid: process.pid, hostname: hostname(), startedAt: new Date().toISOString(), command, ...(processStart === undefined ? {} : { processStart }) };
}

export function actorAlive(actor: Actor): boolean {
  return !isStale({ ...actor });
}

/** The holder a lock file names; undefined when there is none (ENOENT). */
export function readActor(path: string): Promise<Actor | undefined> {
  return readJson<Actor>(path);
}

/**
 * Removes a dead holder's lock. Two launchers may find it dead at once: a
 * guard made with O_EXCL lets one at a time re-read the lock and remove it
 * only if it is still the dead one's, never the lock the other has just taken.
 */
export async function takeOver(lock: string, dead: Actor | undefined): Promise<void> {
  const guard = `${lock}.takeover`;
  let handle;
  try {
    handle = await open(guard, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    // A guard whose maker died (it is older than any takeover takes) is removed for the next try.
    const info = await stat(guard).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > 10_000) await rm(guard, { force: true });
    await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 30));
    return;
  }
  try {
    const current = await readActor(lock).catch(() => undefined);
    if (current === undefined || (dead !== undefined && current.pid === dead.pid && current.startedAt === dead.startedAt)) await rm(lock, { force: true });
  } finally {
    await handle.close();
    await rm(guard, { force: true });
  }
}
