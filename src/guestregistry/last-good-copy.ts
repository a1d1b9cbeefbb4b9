// Keeping the registry file usable: detect a damaged file when it is opened
// (header, quick_check), keep a verified last good copy beside it, and swap a
// damaged file for that copy. The damaged file is moved aside, never deleted.
import { closeSync, copyFileSync, existsSync, openSync, readdirSync, readSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { RegistryCorruptError } from '../errors.ts';
import { replaceFileWithSync, tempWriterPid } from '../primitives/atomic-replace.ts';
import { openStickDatabase } from '../primitives/stick-database.ts';

const HEADER = Buffer.from('SQLite format 3\0', 'latin1');
// SQLITE_CORRUPT, SQLITE_NOTADB (and their extended codes) mean damage; any
// other failure (busy, I/O, permissions) is not a reason to move a file aside.
const DAMAGE_CODES = new Set([11, 26]);

export interface RegistryFiles {
  file: string;
  /** The verified copy of the last good state. */
  lastGood: string;
  journal: string;
}

export function registryFiles(file: string): RegistryFiles {
  return { file, lastGood: `${file}.last-good`, journal: `${file}-journal` };
}

/** What happened when a damaged file was found; `message` is the one line to show. */
export interface RegistryRecovery {
  reason: string;
  movedTo: string;
  restored: boolean;
  message: string;
}

export type IntegrityCheck = 'quick' | 'full' | 'none';

function isDamage(error: unknown): boolean {
  const code = (error as { errcode?: unknown }).errcode;
  return typeof code === 'number' && DAMAGE_CODES.has(code & 0xff);
}

/** Why the file looks damaged before SQLite opens it, if it does. */
function headerProblem(file: string, lastGoodExists: boolean): string | undefined {
  if (!existsSync(file)) return undefined;
  const size = statSync(file).size;
  // A fresh database is empty until its first commit; once a last good copy
  // exists the file has held data, so an empty one has lost it.
  if (size === 0) return lastGoodExists ? 'the file is empty' : undefined;
  const head = Buffer.alloc(HEADER.length);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  if (!head.equals(HEADER)) return 'the file does not start with the SQLite header';
  if (size < 512) return `the file is truncated (${size} bytes)`;
  return undefined;
}

/** Runs the integrity check on an open database; the problem, or undefined when it is fine. */
export function integrityProblem(db: DatabaseSync, check: IntegrityCheck): string | undefined {
  if (check === 'none') {
    db.prepare('SELECT count(*) FROM sqlite_schema').get();
    return undefined;
  }
  const rows = db.prepare(`PRAGMA ${check === 'full' ? 'integrity_check' : 'quick_check'}(5)`).all() as Array<Record<string, unknown>>;
  const lines = rows.flatMap((row) => String(Object.values(row)[0]).split('\n')).filter((line) => line.trim() !== '' && !line.startsWith('***'));
  if (lines.length === 1 && lines[0] === 'ok') return undefined;
  // One line for a person: the first problem, and how many more were found.
  return `${check === 'full' ? 'integrity_check' : 'quick_check'}: ${lines[0] ?? 'failed'}${lines.length > 1 ? ` (and ${lines.length - 1} more)` : ''}`;
}

/** Opens `file` and checks it; the open database, or why it is damaged. */
function tryOpen(file: string, check: IntegrityCheck, readOnly = false): { db: DatabaseSync } | { problem: string; cause: unknown } {
  let db: DatabaseSync | undefined;
  try {
    db = openStickDatabase(file, { access: 'shared', readOnly });
    const problem = integrityProblem(db, check);
    if (problem) {
      db.close();
      return { problem, cause: undefined };
    }
    return { db };
  } catch (error) {
    if (db?.isOpen) db.close();
    if (isDamage(error)) return { problem: (error as Error).message, cause: error };
    throw error;
  }
}

function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
}

/**
 * `base`, or `base-2`, `base-3` … whichever is not taken: two damaged files
 * found within the same second are both kept, never one over the other.
 */
function freeName(base: string): string {
  for (let n = 1; ; n++) {
    const name = n === 1 ? base : `${base}-${n}`;
    if (!existsSync(name) && !existsSync(`${name}-journal`)) return name;
  }
}

/** Removes temporary copies left by a process that died mid-backup or mid-restore (same host: pid not alive). */
function removeStaleTemps(file: string): void {
  const targets = [basename(file), basename(registryFiles(file).lastGood)];
  let names: string[];
  try {
    names = readdirSync(dirname(file));
  } catch {
    return;
  }
  for (const name of names) {
    const pid = targets.map((target) => tempWriterPid(name, target)).find((found) => found !== undefined);
    if (pid === undefined) continue;
    let alive = false;
    try {
      process.kill(pid, 0);
      alive = pid !== process.pid;
    } catch (error) {
      alive = (error as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) {
      try {
        unlinkSync(join(dirname(file), name));
      } catch {
        // someone else removed it
      }
    }
  }
}

/** Is the last good copy itself sound? */
function lastGoodSound(path: string): boolean {
  if (!existsSync(path) || headerProblem(path, true)) return false;
  try {
    const opened = tryOpen(path, 'quick', true);
    if ('db' in opened) {
      opened.db.close();
      return true;
    }
  } catch {
    // unreadable: not a usable copy
  }
  return false;
}

/**
 * Opens the registry file, checking it; a damaged file is moved aside and the
 * last good copy restored (or, without one, a new empty file started).
 */
export function openChecked(file: string, check: IntegrityCheck): { db: DatabaseSync; recovery?: RegistryRecovery } {
  const files = registryFiles(file);
  removeStaleTemps(file);
  const lastGoodExists = existsSync(files.lastGood);
  let problem = headerProblem(file, lastGoodExists);
  let cause: unknown;
  if (!problem) {
    const opened = tryOpen(file, check);
    if ('db' in opened) return { db: opened.db };
    ({ problem, cause } = opened);
  }

  const movedTo = freeName(`${file}.corrupt-${stamp()}`);
  try {
    renameSync(file, movedTo);
  } catch (error) {
    // Another launcher moved it first (and restored the copy): open what it left.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && existsSync(file)) return openChecked(file, check);
    throw error;
  }
  // A journal belongs to the file it was written for; keep it with that file.
  if (existsSync(files.journal)) renameSync(files.journal, `${movedTo}-journal`);
  const restored = lastGoodSound(files.lastGood);
  if (restored) replaceFileWithSync(file, (temp) => copyFileSync(files.lastGood, temp));
  const reopened = tryOpen(file, check);
  if (!('db' in reopened)) {
    throw new RegistryCorruptError(`the registry ${file} is damaged (${problem}) and so is its last good copy (${reopened.problem})`, {
      hint: `the damaged file was moved to ${movedTo}`,
      cause,
      details: { file, movedTo },
    });
  }
  const message = restored
    ? `the registry ${basename(file)} was damaged (${problem}); restored the last good copy (saved ${statSync(files.lastGood).mtime.toISOString()}); the damaged file is kept as ${basename(movedTo)}`
    : `the registry ${basename(file)} was damaged (${problem}) and had no last good copy; starting with an empty registry; the damaged file is kept as ${basename(movedTo)}`;
  return { db: reopened.db, recovery: { reason: problem, movedTo, restored, message } };
}

/**
 * Writes a consistent copy of the open database as the last good copy:
 * VACUUM INTO a temporary name, verify, replace the old copy atomically. A
 * crash at any point leaves the previous copy in place.
 */
export function writeLastGood(db: DatabaseSync, file: string): void {
  replaceFileWithSync(registryFiles(file).lastGood, (temp) => {
    db.prepare('VACUUM INTO ?').run(temp);
    const opened = tryOpen(temp, 'quick', true);
    if (!('db' in opened)) throw new RegistryCorruptError(`the registry copy ${temp} failed its check (${opened.problem})`, { details: { file } });
    opened.db.close();
  });
}
