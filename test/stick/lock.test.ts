import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { StickLockedError } from '../../src/errors.ts';
import { stickLayout } from '../../src/stick/layout.ts';
import { acquireLock, isStale, readLock } from '../../src/stick/lock.ts';

describe('stick lock', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'pocketvm-lock-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('is taken once, refused to a second taker with the holder named, and released', async () => {
    const layout = stickLayout(root);
    const lock = await acquireLock(layout, 'run');
    await assert.rejects(acquireLock(layout, 'demo'), (error: unknown) => {
      assert.ok(error instanceof StickLockedError);
      assert.equal(error.exitCode, 5);
      assert.match(error.message, new RegExp(`launcher run \\(pid ${process.pid} on ${hostname()}`));
      return true;
    });
    await lock.release();
    assert.equal(await readLock(layout), undefined);
    const again = await acquireLock(layout, 'demo');
    await again.release();
  });

  it('takes over a lock whose holder on this host is dead', async () => {
    const layout = stickLayout(root);
    const lock = await acquireLock(layout, 'run');
    // A pid that cannot be alive: beyond the kernel's pid_max.
    await lock.update({ pid: 4_194_305 });
    assert.equal(isStale((await readLock(layout))!), true);
    const next = await acquireLock(layout, 'demo');
    assert.equal((await readLock(layout))?.command, 'demo');
    await next.release();
  });

  it('never takes over a live holder, nor one on another host', async () => {
    const layout = stickLayout(root);
    const lock = await acquireLock(layout, 'run');
    await lock.update({ hostname: 'another-pc', pid: 4_194_305 });
    await assert.rejects(acquireLock(layout, 'demo'), StickLockedError);
    assert.equal((await readLock(layout))?.hostname, 'another-pc');
  });

  it('treats a half-written lock file as stale', async () => {
    const layout = stickLayout(root);
    await acquireLock(layout, 'run');
    await writeFile(layout.lockFile, '{"pid": 12');
    const lock = await acquireLock(layout, 'demo');
    assert.equal(JSON.parse(await readFile(layout.lockFile, 'utf8')).command, 'demo');
    await lock.release();
  });

  it('release leaves alone a lock that someone else took over', async () => {
    const layout = stickLayout(root);
    const lock = await acquireLock(layout, 'run');
    await writeFile(layout.lockFile, JSON.stringify({ pid: 1, hostname: 'x', command: 'other', startedAt: 'later' }));
    await lock.release();
    assert.equal((await readLock(layout))?.command, 'other');
  });
});
