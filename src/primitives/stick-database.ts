// Every SQLite database on the stick opens here, under one policy (node:sqlite).
//
// The stick may be FAT32 or exFAT and may be pulled out at any moment. So:
// - Nothing of a database is memory-mapped: no mmap I/O (mmap_size = 0) and
//   no shared-memory WAL index (the `-shm` file is mapped). A page mapped
//   from a stick that is gone is a SIGBUS that kills the launcher; a read()
//   or write() is an I/O error it can report.
// - So WAL only with exclusive locking, where SQLite keeps the WAL index in
//   the process's own memory and makes no `-shm` file. Exclusive locking
//   shuts every other process out of the file for as long as it is open,
//   which only a database one process holds can take:
//   - 'exclusive': the layer stores (users/<name>/upper/, files/), held by
//     the session that holds the stick lock. WAL, synchronous = NORMAL: a
//     commit is atomic and costs no fsync of its own; what must outlive a
//     pulled stick is made durable by a checkpoint where the guest asks for
//     it (LayerStore.durable).
//   - 'shared': the guest registry, which the CLI (`launcher reg`) opens
//     beside a running session. A rollback journal with synchronous = FULL:
//     every commit is atomic and durable by itself; the busy timeout lets
//     the processes take turns (each write one short transaction).
// - Both check cell sizes as they read (a damaged file is an error, not a
//   crash) and trust no SQL stored in the schema.
import { DatabaseSync } from 'node:sqlite';

export type StickDatabaseAccess = 'shared' | 'exclusive';

/** How long a 'shared' database waits for another process's transaction. */
export const STICK_DATABASE_BUSY_TIMEOUT_MS = 10_000;

const COMMON: readonly string[] = ['mmap_size = 0', 'cell_size_check = ON', 'trusted_schema = OFF'];

const BY_ACCESS: Record<StickDatabaseAccess, readonly string[]> = {
  shared: [`busy_timeout = ${STICK_DATABASE_BUSY_TIMEOUT_MS}`, 'journal_mode = DELETE', 'synchronous = FULL'],
  exclusive: ['locking_mode = EXCLUSIVE', 'journal_mode = WAL', 'synchronous = NORMAL'],
};

/** The pragmas of the policy (also for a benchmark's raw-SQLite baseline). */
export function stickDatabasePragmas(access: StickDatabaseAccess): readonly string[] {
  return [...BY_ACCESS[access], ...COMMON];
}

/** Opens (creating if needed, unless read-only) a database file on the stick under the policy. */
export function openStickDatabase(file: string, options: { access: StickDatabaseAccess; readOnly?: boolean }): DatabaseSync {
  const readOnly = options.readOnly === true;
  const db = new DatabaseSync(file, { readOnly, ...(options.access === 'shared' ? { timeout: STICK_DATABASE_BUSY_TIMEOUT_MS } : {}) });
  try {
    for (const pragma of stickDatabasePragmas(options.access)) {
      // A read-only connection cannot change the journal mode; the file's own stands.
      if (readOnly && pragma.startsWith('journal_mode')) continue;
      db.exec(`PRAGMA ${pragma}`);
    }
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}
