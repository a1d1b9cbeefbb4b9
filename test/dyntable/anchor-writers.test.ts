// Two sessions of one user rewrite users/<name>/anchor.json (docs/guests.md,
// "Several at once": the default guest's store and every guest's
// confirmations are named in it). Two processes open stores against one
// anchor from the same instant; every store either opened must be named in
// the anchor at the end. Without the anchor's lock a read-modify-write of
// one overwrites the other's and stores drop out (the next open of such a
// store is refused as rolled back, exit 10).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { readAnchor } from '../../src/dyntable/rollback-anchor.ts';
import { withFileLockSync } from '../../src/primitives/file-lock-sync.ts';

const child = new URL('./anchor-writers-child.ts', import.meta.url).pathname;
const COUNT = 40;

describe('the rollback anchor with two writers', function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pocketvm-anchor-writers-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps every store both processes opened at the same time', async () => {
    const anchor = join(dir, 'anchor.json');
    const startAt = String(Date.now() + 2_500);
    const codes = await Promise.all(
      ['work', 'play'].map(
        (who) =>
          new Promise<number | null>((resolve) =>
            spawn(process.execPath, [child, anchor, who, startAt, String(COUNT)], { stdio: 'inherit' }).once('exit', resolve),
          ),
      ),
    );
    assert.deepEqual(codes, [0, 0]);
    const stores = readAnchor(anchor, Buffer.alloc(32, 7))!.stores;
    const missing = ['work', 'play'].flatMap((who) => Array.from({ length: COUNT }, (_, i) => `${who}-${i}`)).filter((name) => !stores[name]);
    assert.deepEqual(missing, [], `${missing.length} of ${2 * COUNT} stores lost from the anchor`);
    assert.ok(Object.values(stores).every((store) => store.next === undefined));
    assert.equal(existsSync(`${anchor}.lock`), false, 'the lock is let go');
  });

  it("takes over a dead holder's lock, and waits for a live one", () => {
    const lock = join(dir, 'x.lock');
    // A pid that is not running: taken over at once.
    withFileLockSync(lock, () => undefined);
    writeFileSync(lock, JSON.stringify({ pid: 2 ** 22 + 12345, hostname: hostname() }));
    assert.equal(
      withFileLockSync(lock, () => 'ran'),
      'ran',
    );
    // This process holds it: another wait gives up after its time, naming the holder.
    writeFileSync(lock, JSON.stringify({ pid: process.pid, hostname: hostname() }));
    assert.throws(() => withFileLockSync(lock, () => 'ran', 200), new RegExp(`held by process ${process.pid}`));
  });
});
