// One policy for every SQLite database on the stick: nothing memory-mapped
// (no -shm file, no mmap I/O), WAL only with exclusive locking, and every
// database on the stick opened through it.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { LayerStore } from '../../src/dyntable/layer-store.ts';
import { openChecked } from '../../src/guestregistry/last-good-copy.ts';
import { openStickDatabase, STICK_DATABASE_BUSY_TIMEOUT_MS, stickDatabasePragmas } from '../../src/primitives/stick-database.ts';

function pragma(db: DatabaseSync, name: string): unknown {
  return Object.values(db.prepare(`PRAGMA ${name}`).get() as Record<string, unknown>)[0];
}

describe('stick database policy', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pocketvm-stickdb-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("'exclusive': WAL kept in the process's memory (no -shm file), no mmap", () => {
    const file = join(dir, 'x.sqlite');
    const db = openStickDatabase(file, { access: 'exclusive' });
    try {
      db.exec('CREATE TABLE t (v); INSERT INTO t VALUES (1);');
      assert.equal(pragma(db, 'journal_mode'), 'wal');
      assert.equal(pragma(db, 'locking_mode'), 'exclusive');
      assert.equal(pragma(db, 'synchronous'), 1);
      assert.equal(pragma(db, 'mmap_size'), 0);
      assert.equal(pragma(db, 'cell_size_check'), 1);
      assert.equal(existsSync(`${file}-wal`), true);
      assert.equal(existsSync(`${file}-shm`), false);
    } finally {
      db.close();
    }
  });

  it("'shared': a rollback journal with full syncs and a busy timeout, no mmap", () => {
    const db = openStickDatabase(join(dir, 'r.sqlite'), { access: 'shared' });
    try {
      assert.equal(pragma(db, 'journal_mode'), 'delete');
      assert.equal(pragma(db, 'synchronous'), 2);
      assert.equal(pragma(db, 'busy_timeout'), STICK_DATABASE_BUSY_TIMEOUT_MS);
      assert.equal(pragma(db, 'mmap_size'), 0);
    } finally {
      db.close();
    }
    assert.ok(stickDatabasePragmas('shared').includes('journal_mode = DELETE'));
  });

  it('the layer store and the registry open under it', async () => {
    const store = await LayerStore.open(join(dir, 'upper'));
    try {
      assert.equal(existsSync(join(dir, 'upper', 'layer.sqlite-wal')), true, 'the layer store is WAL');
      assert.equal(existsSync(join(dir, 'upper', 'layer.sqlite-shm')), false, 'without shared memory');
    } finally {
      await store.close();
    }
    const { db } = openChecked(join(dir, 'registry.sqlite'), 'quick');
    try {
      assert.equal(pragma(db, 'journal_mode'), 'delete');
      assert.equal(pragma(db, 'synchronous'), 2);
    } finally {
      db.close();
    }
  });

  it('is the only place in src/ that opens a SQLite database', () => {
    const src = new URL('../../src/', import.meta.url);
    const opening = (readdirSync(src, { recursive: true }) as string[])
      .filter((path) => path.endsWith('.ts') && /\bnew DatabaseSync\(/.test(readFileSync(new URL(path, src), 'utf8')))
      .map((path) => path.split('\\').join('/'));
    assert.deepEqual(opening, ['primitives/stick-database.ts']);
  });
});
