// The stick lock: one launcher drives a stick at a time. It is a file created
// with O_EXCL (works on FAT and exFAT, where nothing else does), holding who
// owns it so the refusal can name the holder, and how to reach the session.
import { readFileSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename } from 'node:path';
import { StickError, StickLockedError } from '../errors.ts';
import { replaceFile } from '../primitives/atomic-replace.ts';
import type { StickLayout } from './layout.ts';
import { meansGone } from './presence-io.ts';
import { assertWritable } from './stick-root.ts';
import { processStartTicks } from '../primitives/process-start.ts';

export interface ControlAddress {
  /** A UNIX socket path inside a private directory, or a Windows pipe name. */
  path: string;
  /** The private directory to remove at teardown, if any. */
  privateDir?: string;
  /** Presented on every control request: defence in depth behind the directory's mode. */
  token: string;
}

export interface LockHolder {
  pid: number;
  hostname: string;
  command: string;
  startedAt: string;
  guest?: string;
  control?: ControlAddress;
  /** `starting` until the guest is ready; `ready` after; `stopping` while it shuts down; `down` once QEMU is gone and teardown runs. */
  state?: 'starting' | 'ready' | 'stopping' | 'down';
  /** The logged-in user, once known: whose disk a later recovery checks. */
  user?: string;
  /** The machine's size once planned: what the other guests starting from the stick share the host with (src/session/sizing.ts). */
  machine?: { memoryMiB: number; cpus: number };
  /**
   * Private folders the session made on the host for its sockets (the checked
   * base's NBD socket, QEMU's VNC socket): a holder killed outright cannot
   * remove them, so whoever takes its stale lock does (removeLeftovers).
   */
  hostDirs?: string[];
  /** The console page's address (no token) while the launch serves one (docs/console-page.md). */
  page?: { address: string };
  /**
   * Where /proc exists: the holder's start time in clock ticks since boot
   * (field 22 of /proc/<pid>/stat). A live process with the holder's pid but
   * another start time is not the holder: the pid was reused.
   */
  processStart?: number;
}

export function describeHolder(holder: LockHolder): string {
  return `launcher ${holder.command} (pid ${holder.pid} on ${holder.hostname}, since ${holder.startedAt})`;
}

/** Where /proc exists: a zombie (dead, not yet reaped by its new parent) is not a holder. */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.charAt(stat.lastIndexOf(')') + 2) === 'Z';
  } catch {
    return false;
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

export async function readLock(layout: StickLayout): Promise<LockHolder | undefined> {
  let text: string;
  try {
    text = await readFile(layout.lockFile, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    // A device that answers like this is not a stick in use: it is gone.
    if (meansGone(error)) throw new StickError(`the stick at ${layout.root} cannot be read (${code}): was it removed?`, 'plug it back in and try again');
    throw error;
  }
  try {
    return JSON.parse(text) as LockHolder;
  } catch {
    // A half-written lock (crash mid-write) reads as garbage: treat as stale.
    return { pid: -1, hostname: '?', command: '?', startedAt: '?' };
  }
}

/**
 * A lock whose holder ran on this host and is gone can be taken over safely;
 * so can one whose pid now belongs to another process (the holder died and
 * the pid was reused: the start time recorded in the lock differs).
 */
export function isStale(holder: LockHolder): boolean {
  if (holder.pid === -1) return true;
  if (holder.hostname !== hostname()) return false;
  if (!processAlive(holder.pid)) return true;
  if (holder.processStart === undefined) return false;
  const started = processStartTicks(holder.pid);
  return started !== undefined && started !== holder.processStart;
}

function sameHolder(a: LockHolder, b: LockHolder): boolean {
  return a.pid === b.pid && a.hostname === b.hostname && a.startedAt === b.startedAt;
}

export class StickLock {
  readonly layout: StickLayout;
  /** The dead holder whose stale lock this one replaced: its session did not end cleanly. */
  readonly takenOver: LockHolder | undefined;
  #holder: LockHolder;
  #released = false;

  constructor(layout: StickLayout, holder: LockHolder, takenOver?: LockHolder) {
    this.layout = layout;
    this.#holder = holder;
    this.takenOver = takenOver;
  }

  get holder(): LockHolder {
    return this.#holder;
  }

  /** Rewrites the holder record, replaced atomically so a reader never sees half of it. */
  async update(change: Partial<LockHolder>): Promise<void> {
    if (this.#released) return;
    this.#holder = { ...this.#holder, ...change };
    await replaceFile(this.layout.lockFile, `${JSON.stringify(this.#holder, null, 2)}\n`);
  }

  /** Records a private host folder of this session's (see `LockHolder.hostDirs`). */
  async recordHostDir(dir: string): Promise<void> {
    await this.update({ hostDirs: [...(this.#holder.hostDirs ?? []), dir] });
  }

  /**
   * The stick was pulled out: the lock cannot be removed and nothing more is
   * written; the lock is let go in memory only. The next launch finds it stale
   * and checks what the dead session left.
   */
  abandon(): void {
    this.#released = true;
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    const current = await readLock(this.layout);
    // Only remove a lock that is still ours.
    if (current && current.pid === this.#holder.pid && current.startedAt === this.#holder.startedAt) {
      await rm(this.layout.lockFile, { force: true });
    }
  }
}

/** The sockets a session puts in its private host folders: a folder holding anything else is not removed. */
const LEFTOVER_SOCKETS = new Set(['control.sock', 'base.sock', 'vnc.sock']);

/**
 * A holder killed outright (SIGKILL, power loss) could not remove its private
 * folders from the host (the control socket's, and those of `hostDirs`);
 * whoever takes its stale lock does, so the host is left as found. Only a
 * directory the launcher itself would have made (a `pocketvm-*` folder
 * holding at most its sockets) is removed.
 */
async function removeLeftovers(holder: LockHolder): Promise<void> {
  if (holder.hostname !== hostname()) return;
  const dirs = [holder.control?.privateDir, ...(holder.hostDirs ?? [])].filter((dir): dir is string => typeof dir === 'string');
  for (const dir of dirs) {
    if (!basename(dir).startsWith('pocketvm-')) continue;
    try {
      const entries = await readdir(dir);
      if (entries.every((name) => LEFTOVER_SOCKETS.has(name))) await rm(dir, { recursive: true, force: true });
    } catch {
      // already gone
    }
  }
}

/** A takeover guard older than this was left by a launcher that died mid-takeover. */
const TAKEOVER_GUARD_STALE_MS = 30_000;

/**
 * Removes the stale lock `stale`, if it is still the one on the stick. Two
 * launchers may judge the same lock stale at once; without care the slower
 * one would delete the lock the faster one has just taken. A guard file
 * created with O_EXCL (FAT has nothing better) lets one of them at a time
 * re-read the lock and remove it only if it is still the dead holder's.
 */
async function takeOverStale(layout: StickLayout, stale: LockHolder): Promise<boolean> {
  const guardFile = `${layout.lockFile}.takeover`;
  let guard;
  try {
    guard = await open(guardFile, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    await removeStaleGuard(guardFile);
    return false;
  }
  try {
    await guard.writeFile(JSON.stringify({ pid: process.pid, hostname: hostname(), startedAt: new Date().toISOString() }));
    const current = await readLock(layout);
    if (!current || !sameHolder(current, stale)) return false;
    await removeLeftovers(stale);
    await rm(layout.lockFile, { force: true });
    return true;
  } finally {
    await guard.close().catch(() => {});
    await rm(guardFile, { force: true });
  }
}

async function removeStaleGuard(guardFile: string): Promise<void> {
  try {
    const [text, info] = await Promise.all([readFile(guardFile, 'utf8'), stat(guardFile)]);
    let owner: LockHolder | undefined;
    try {
      owner = JSON.parse(text) as LockHolder;
    } catch {
      owner = undefined;
    }
    const dead = owner !== undefined && owner.hostname === hostname() && !processAlive(owner.pid);
    if (dead || Date.now() - info.mtimeMs > TAKEOVER_GUARD_STALE_MS) await rm(guardFile, { force: true });
  } catch {
    // gone already
  }
}

export async function acquireLock(layout: StickLayout, command: string, extra: Partial<LockHolder> = {}): Promise<StickLock> {
  await assertWritable(layout.root);
  await mkdir(layout.runDir, { recursive: true });
  const processStart = processStartTicks(process.pid);
  const holder: LockHolder = {
    pid: process.pid,
    hostname: hostname(),
    command,
    startedAt: new Date().toISOString(),
    ...(processStart === undefined ? {} : { processStart }),
    ...extra,
  };
  let takenOver: LockHolder | undefined;
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const handle = await open(layout.lockFile, 'wx');
      try {
        await handle.writeFile(`${JSON.stringify(holder, null, 2)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      return new StickLock(layout, holder, takenOver);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const current = await readLock(layout);
      if (!current) continue;
      if (!isStale(current)) throw new StickLockedError(describeHolder(current), layout.lockFile);
      if (await takeOverStale(layout, current)) takenOver = current;
      else await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 30));
    }
  }
  const current = await readLock(layout);
  throw new StickLockedError(current ? describeHolder(current) : 'another launcher', layout.lockFile);
}
