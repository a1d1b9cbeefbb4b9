// While a user's session runs (one real boot): removing that user is refused
// (exit 5, naming the session) and their disk stays; another user can still be
// removed; a second `run --detach` is refused on the terminal only, and the
// running session's log is not touched by the refusal.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { addStickUser, freshStick, launcher, launcherJson, loginArgs } from './harness.ts';

const sha256 = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

describe("a running user's session (boots the real guest once)", function () {
  this.timeout(300_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let disk: string;
  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'alice', 'alice passphrase');
    await addStickUser(stick.root, 'bob', 'bob passphrase');
    disk = join(stick.root, 'users', 'alice', 'disks', 'default.qcow2');
    const started = await launcherJson<{ pid: number }>(['run', '--detach', '--accel', 'tcg', '--stick', stick.root, ...loginArgs('alice')], {
      input: 'alice passphrase\n',
    });
    assert.equal(started.exitCode, 0, started.stderr);
  });
  after(async () => {
    await launcher(['stop', '--force', '--stick', stick.root]);
    await stick.dispose();
  });

  it('user remove alice --yes: exit 5 naming the session; her user file and disk stay', async () => {
    const before = await sha256(join(stick.root, 'users', 'alice', 'user.json'));
    const result = await launcher(['user', 'remove', 'alice', '--yes', '--stick', stick.root]);
    assert.equal(result.exitCode, 5, result.stderr);
    assert.match(result.stderr, /pocketvm: error: alice's session is running \(launcher run --detach \(pid \d+/);
    assert.match(result.stderr, /nothing was removed/);
    assert.equal(await sha256(join(stick.root, 'users', 'alice', 'user.json')), before);
    assert.ok(existsSync(disk));
    const json = await launcherJson<{ error: { code: number; user: string } }>(['user', 'remove', 'alice', '--yes', '--stick', stick.root]);
    assert.deepEqual([json.exitCode, json.json.error.code, json.json.error.user], [5, 5, 'alice']);
  });

  it('user remove bob (not the one running) still works', async () => {
    const result = await launcher(['user', 'remove', 'bob', '--yes', '--stick', stick.root]);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(existsSync(join(stick.root, 'users', 'bob')), false);
  });

  it('a second run --detach: exit 5 on the terminal; the running session log is not appended to', async () => {
    const log = join(stick.root, 'run', 'session.log');
    const before = await sha256(log);
    const result = await launcher(['run', '--detach', '--accel', 'tcg', '--stick', stick.root, ...loginArgs('alice')], { input: 'alice passphrase\n' });
    assert.equal(result.exitCode, 5, result.stderr);
    assert.match(result.stderr, /this stick is in use by launcher run --detach/);
    assert.equal(await sha256(log), before);
  });

  it('after stop, alice can be removed', async () => {
    assert.equal((await launcher(['stop', '--stick', stick.root])).exitCode, 0);
    const result = await launcher(['user', 'remove', 'alice', '--yes', '--stick', stick.root]);
    assert.equal(result.exitCode, 0, result.stderr);
  });
});
