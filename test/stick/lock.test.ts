import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { StickLockedError } from '../../src/errors.ts';
import { stickLayout } from '../../src/stick/layout.ts';
import { processStartTicks } from '../../src/primitives/process-start.ts';
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
      assert.match(error.message, new RegExp(`launcher run \\(pid ${process.pid} on ${hostname()}, since \\d{4}-\\d\\d-\\d\\dT`));
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

  it("the taker removes the dead holder's private host folders (its sockets only), never another folder", async () => {
    const layout = stickLayout(root);
    const lock = await acquireLock(layout, 'run');
    const sockets = await mkdtemp(join(root, 'pocketvm-'));
    await writeFile(join(sockets, 'base.sock'), '');
    await writeFile(join(sockets, 'vnc.sock'), '');
    const kept = await mkdtemp(join(root, 'pocketvm-'));
    await writeFile(join(kept, 'notes.txt'), 'not a socket of ours');
    const notOurs = await mkdtemp(join(root, 'other-'));
    await lock.recordHostDir(sockets);
    await lock.recordHostDir(kept);
    await lock.recordHostDir(notOurs);
    assert.deepEqual((await readLock(layout))?.hostDirs, [sockets, kept, notOurs]);
    await lock.update({ pid: 4_194_305 });
    const next = await acquireLock(layout, 'demo');
    assert.equal(existsSync(sockets), false);
    assert.equal(existsSync(kept), true);
    assert.equal(existsSync(notOurs), true);
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

  it('two launchers taking over the same stale lock at once: exactly one gets it', async () => {
    const layout = stickLayout(root);
    const dead = await acquireLock(layout, 'run', { user: 'alice' });
    await dead.update({ pid: 4_194_305 });
    const results = await Promise.allSettled([acquireLock(layout, 'a'), acquireLock(layout, 'b'), acquireLock(layout, 'c')]);
    const won = results.filter((r): r is PromiseFulfilledResult<Awaited<ReturnType<typeof acquireLock>>> => r.status === 'fulfilled');
    assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
    for (const lost of results.filter((r) => r.status === 'rejected')) assert.ok((lost as PromiseRejectedResult).reason instanceof StickLockedError);
    const winner = won[0]!.value;
    assert.equal((await readLock(layout))?.command, winner.holder.command);
    // The winner knows whose session died (and its user, whose disk recovery checks).
    assert.equal(winner.takenOver?.pid, 4_194_305);
    assert.equal(winner.takenOver?.user, 'alice');
    assert.equal(existsSync(`${layout.lockFile}.takeover`), false);
    await winner.release();
  });

  it('a lock whose pid now belongs to another process is stale (the pid was reused)', async () => {
    const layout = stickLayout(root);
    const lock = await acquireLock(layout, 'run');
    // The lock records its holder's start time (clock ticks since boot, immune to clock changes).
    assert.equal(lock.holder.processStart, processStartTicks(process.pid));
    assert.equal(isStale((await readLock(layout))!), false);
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      await new Promise((resolve) => child.once('spawn', resolve));
      // The holder's pid is now a younger process: not the holder.
      await lock.update({ pid: child.pid! });
      assert.equal(isStale((await readLock(layout))!), true);
      // A lock from a launcher that did not record its start time: a live pid is the holder.
      await writeFile(layout.lockFile, JSON.stringify({ ...lock.holder, pid: child.pid!, processStart: undefined }));
      assert.equal(isStale((await readLock(layout))!), false);
      await rm(layout.lockFile);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('a takeover guard left by a launcher that died mid-takeover does not block for ever', async () => {
    const layout = stickLayout(root);
    const dead = await acquireLock(layout, 'run');
    await dead.update({ pid: 4_194_305 });
    await writeFile(`${layout.lockFile}.takeover`, JSON.stringify({ pid: 4_194_306, hostname: hostname(), startedAt: new Date().toISOString() }));
    const lock = await acquireLock(layout, 'demo');
    assert.equal(lock.takenOver?.pid, 4_194_305);
    await lock.release();
  });

  it('abandon (the stick was pulled out) lets go without touching the stick', async () => {
    const layout = stickLayout(root);
    const lock = await acquireLock(layout, 'run');
    lock.abandon();
    await lock.update({ state: 'stopping' });
    await lock.release();
    const left = await readLock(layout);
    assert.equal(left?.pid, process.pid);
    assert.equal(left?.state, undefined);
    assert.equal(lock.takenOver, undefined);
  });
});
