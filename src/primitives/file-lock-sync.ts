// A lock across processes around a short synchronous read-modify-write of one
// file on the stick (users/<name>/anchor.json: two sessions of one user, each
// running a guest, rewrite it; docs/guests.md, "Several at once"). `<file>.lock`
// is created with O_EXCL and names its holder; a waiter polls it every few
// milliseconds (the critical sections are a read and one or two writes). A
// holder that died is taken over under a guard made the same way, so two
// waiters that find it dead at once never remove the lock the other has just
// taken. Synchronous because the callers are (src/dyntable/rollback-anchor.ts).
import { closeSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { processStartTicks } from './process-start.ts';

interface Holder {
  pid: number;
  hostname: string;
  /** /proc/<pid>/stat field 22: a reused pid is not the holder. */
  start?: number;
}

const POLL_MS = 3;
/** A holder on another computer (the stick moved) cannot be asked; its lock is stale after this. */
const FOREIGN_STALE_MS = 60_000;
const GUARD_STALE_MS = 10_000;

function alive(holder: Holder, lockPath: string): boolean {
  if (holder.hostname !== hostname()) return Date.now() - mtimeMs(lockPath) < FOREIGN_STALE_MS;
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (holder.start === undefined) return true;
  const started = processStartTicks(holder.pid);
  return started === undefined || started === holder.start;
}

function mtimeMs(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return Date.now();
  }
}

function readHolder(path: string): Holder | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Holder;
  } catch {
    return undefined;
  }
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Creates `path` with O_EXCL holding `text`; false when it exists. */
function create(path: string, text: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** Removes a dead holder's lock: under a guard, and only if it is still that holder's. */
function takeOver(lockPath: string, dead: Holder | undefined): void {
  const guard = `${lockPath}.takeover`;
  if (!create(guard, String(process.pid))) {
    if (Date.now() - mtimeMs(guard) > GUARD_STALE_MS) rmSync(guard, { force: true });
    return;
  }
  try {
    const current = readHolder(lockPath);
    const same = current === undefined ? dead === undefined : dead !== undefined && current.pid === dead.pid && current.start === dead.start;
    if (same) rmSync(lockPath, { force: true });
  } finally {
    rmSync(guard, { force: true });
  }
}

/** Runs `critical` holding `lockPath`; throws after `waitMs` behind a live holder. */
export function withFileLockSync<T>(lockPath: string, critical: () => T, waitMs = 30_000): T {
  const start = processStartTicks(process.pid);
  const me = JSON.stringify({ pid: process.pid, hostname: hostname(), ...(start === undefined ? {} : { start }) } satisfies Holder);
  const deadline = Date.now() + waitMs;
  while (!create(lockPath, me)) {
    const holder = readHolder(lockPath);
    // Unreadable: its maker may be writing it this instant; only an old one is a dead maker's.
    if (holder === undefined ? Date.now() - mtimeMs(lockPath) > GUARD_STALE_MS : !alive(holder, lockPath)) takeOver(lockPath, holder);
    else if (Date.now() > deadline) throw new Error(`${lockPath} is held by process ${holder?.pid ?? '?'} for more than ${waitMs / 1000} s`);
    else sleep(POLL_MS);
  }
  try {
    return critical();
  } finally {
    rmSync(lockPath, { force: true });
  }
}
