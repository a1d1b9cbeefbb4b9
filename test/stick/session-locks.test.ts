// Where a running guest's state lives (docs/guests.md, "Several at once"):
// the default guest keeps the stick's old paths, any other guest has its own,
// and the commands that reach a session find the right one.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { findOneSession, findSessions } from '../../src/cli/running-guest.ts';
import { ExitCode, PocketError, SeveralGuestsError } from '../../src/errors.ts';
import { dyntablePaths, guestLogPaths, registryPaths, stickLayout } from '../../src/stick/layout.ts';
import { acquireLock } from '../../src/stick/lock.ts';
import { guestSessionLayout, liveSessions, readSessions, sessionLockFile } from '../../src/stick/session-locks.ts';

describe('per-guest session state', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pocketvm-session-locks-'));
    await mkdir(join(dir, '.pocketvm'), { recursive: true });
    await writeFile(join(dir, '.pocketvm', 'stick.json'), '{"format":1}');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('keeps the default guest on the paths of a stick from before; gives any other guest its own', () => {
    const layout = stickLayout(dir);
    assert.equal(sessionLockFile(layout, 'default'), layout.lockFile);
    assert.equal(sessionLockFile(layout, 'play'), join(dir, 'run', 'play.lock.json'));
    assert.equal(guestLogPaths(layout, 'default').session, join(dir, 'run', 'session.log'));
    assert.equal(guestLogPaths(layout, 'play').session, join(dir, 'run', 'play.session.log'));
    assert.equal(registryPaths(layout, 'alice', 'default').file, join(dir, 'users', 'alice', 'registry.sqlite'));
    assert.equal(registryPaths(layout, 'alice', 'play', 'default').file, join(dir, 'users', 'alice', 'guests', 'play', 'registry.sqlite'));
    assert.equal(registryPaths(layout, 'alice', 'play', 'default').defaultsFile, join(dir, 'payload', 'default', 'registry.reg'));
    assert.deepEqual(dyntablePaths(layout, 'alice'), {
      filesDir: join(dir, 'users', 'alice', 'files'),
      upperDir: join(dir, 'users', 'alice', 'upper'),
      confirmations: join(dir, 'users', 'alice', 'tables-confirmed.json'),
    });
    assert.deepEqual(dyntablePaths(layout, 'alice', 'play'), {
      filesDir: join(dir, 'users', 'alice', 'guests', 'play', 'files'),
      upperDir: join(dir, 'users', 'alice', 'guests', 'play', 'upper'),
      // Consent to a host folder is the person's, whichever guest asks.
      confirmations: join(dir, 'users', 'alice', 'tables-confirmed.json'),
    });
  });

  it('two guests hold their locks at once; the same guest twice is refused', async () => {
    const layout = stickLayout(dir);
    const first = await acquireLock(guestSessionLayout(layout, 'default'), 'run', { guest: 'default' });
    const second = await acquireLock(guestSessionLayout(layout, 'play'), 'run', { guest: 'play' });
    await assert.rejects(
      acquireLock(guestSessionLayout(layout, 'play'), 'run', { guest: 'play' }),
      (error: unknown) => (error as PocketError).exitCode === ExitCode.stickLocked,
    );
    assert.deepEqual(
      (await liveSessions(layout)).map((session) => [session.guest, session.layout.lockFile]),
      [
        ['default', layout.lockFile],
        ['play', join(dir, 'run', 'play.lock.json')],
      ],
    );
    // Half-written updates and takeover guards are not sessions.
    await writeFile(join(dir, 'run', 'play.lock.json.0a1b.tmp'), '{');
    await writeFile(join(dir, 'run', 'play.lock.json.takeover'), '{}');
    assert.equal((await readSessions(layout)).length, 2);
    await first.release();
    await second.release();
    assert.deepEqual(await readSessions(layout), []);
  });

  it('commands find the one session, refuse another name, and name every guest when several run and none is given (exit 33)', async () => {
    const layout = stickLayout(dir);
    await assert.rejects(findOneSession(layout, undefined, 'stop'), (error: unknown) => (error as PocketError).exitCode === ExitCode.noSession);
    const play = await acquireLock(guestSessionLayout(layout, 'play'), 'run', { guest: 'play' });
    const found = await findOneSession(layout, undefined, 'stop');
    assert.deepEqual([found.guest, found.layout.lockFile], ['play', join(dir, 'run', 'play.lock.json')]);
    await assert.rejects(findOneSession(layout, 'default', 'stop'), (error: unknown) => {
      assert.equal((error as PocketError).exitCode, ExitCode.noSession);
      assert.match((error as Error).message, /no guest "default" is running from .*; play is/);
      return true;
    });
    const work = await acquireLock(guestSessionLayout(layout, 'work'), 'run', { guest: 'work' });
    await assert.rejects(findOneSession(layout, undefined, 'exec'), (error: unknown) => {
      assert.ok(error instanceof SeveralGuestsError);
      assert.equal(error.exitCode, 33);
      assert.match(error.message, /2 guests are running from .* \(play, work\): say which with --guest/);
      return true;
    });
    assert.equal((await findOneSession(layout, 'work', 'exec')).guest, 'work');
    assert.deepEqual(
      (await findSessions(layout, undefined, 'eject')).live.map((session) => session.guest),
      ['play', 'work'],
    );
    await play.release();
    await work.release();
  });

  it("a dead launcher's lock is no running guest, but status can name it", async () => {
    const layout = stickLayout(dir);
    await mkdir(join(dir, 'run'), { recursive: true });
    await writeFile(
      sessionLockFile(layout, 'play'),
      JSON.stringify({ pid: 4_194_306, hostname: hostname(), command: 'run', startedAt: 'then', guest: 'play' }),
    );
    const found = await findSessions(layout, undefined, 'status');
    assert.deepEqual([found.live.length, found.stale?.guest], [0, 'play']);
  });
});
