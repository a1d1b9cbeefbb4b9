// The stick lock: one launcher drives a stick at a time. It is a file created
// with O_EXCL (works on FAT and exFAT, where nothing else does), holding who
// owns it so the refusal can name the holder, and how to reach the session.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename } from 'node:path';
import { StickLockedError } from '../errors.ts';
import type { StickLayout } from './layout.ts';

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
  /** `starting` until the guest is ready; `ready` after; `stopping` during teardown. */
  state?: 'starting' | 'ready' | 'stopping';
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
  try {
    return JSON.parse(await readFile(layout.lockFile, 'utf8')) as LockHolder;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    // A half-written lock (crash mid-write) reads as garbage: treat as stale.
    return { pid: -1, hostname: '?', command: '?', startedAt: '?' };
  }
}

/** A lock whose holder ran on this host and is gone can be taken over safely. */
export function isStale(holder: LockHolder): boolean {
  if (holder.pid === -1) return true;
  return holder.hostname === hostname() && !processAlive(holder.pid);
}

export class StickLock {
  readonly layout: StickLayout;
  #holder: LockHolder;
  #released = false;

  constructor(layout: StickLayout, holder: LockHolder) {
    this.layout = layout;
    this.#holder = holder;
  }

  get holder(): LockHolder {
    return this.#holder;
  }

  /** Rewrites the holder record; temp + rename so a reader never sees half of it. */
  async update(change: Partial<LockHolder>): Promise<void> {
    if (this.#released) return;
    this.#holder = { ...this.#holder, ...change };
    const temp = `${this.layout.lockFile}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(temp, `${JSON.stringify(this.#holder, null, 2)}\n`);
    await rename(temp, this.layout.lockFile);
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

/**
 * A holder killed outright (SIGKILL, power loss) could not remove its private
 * control directory from the host; whoever takes its stale lock does, so the
 * host is left as found. Only a directory the launcher itself would have made
 * (a `pocketvm-*` folder holding at most the control socket) is removed.
 */
async function removeLeftovers(holder: LockHolder): Promise<void> {
  const dir = holder.control?.privateDir;
  if (!dir || holder.hostname !== hostname() || !basename(dir).startsWith('pocketvm-')) return;
  try {
    const entries = await readdir(dir);
    if (entries.every((name) => name === 'control.sock')) await rm(dir, { recursive: true, force: true });
  } catch {
    // already gone
  }
}

export async function acquireLock(layout: StickLayout, command: string, extra: Partial<LockHolder> = {}): Promise<StickLock> {
  await mkdir(layout.runDir, { recursive: true });
  const holder: LockHolder = { pid: process.pid, hostname: hostname(), command, startedAt: new Date().toISOString(), ...extra };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(layout.lockFile, 'wx');
      try {
        await handle.writeFile(`${JSON.stringify(holder, null, 2)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      return new StickLock(layout, holder);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const current = await readLock(layout);
      if (current && !isStale(current)) throw new StickLockedError(describeHolder(current), layout.lockFile);
      if (current) await removeLeftovers(current);
      await rm(layout.lockFile, { force: true });
    }
  }
  const current = await readLock(layout);
  throw new StickLockedError(current ? describeHolder(current) : 'another launcher', layout.lockFile);
}
