// A guest of the stick booted by `run --guest NAME`: refused until it is
// installed (exit 30, no QEMU), then booted from its payload with its
// committed platform (its memory, its own table rule under /host), shown as
// running by `guest list` while its session runs and installed after, and
// refused by commands that need it at rest while it runs.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { addStickUser, freshStick, launcher, launcherJson, loginArgs, qemuPidsFor } from './harness.ts';

const PASSPHRASE = 'guests test passphrase';

describe('run --guest NAME for a guest of the stick', function () {
  this.timeout(600_000);
  let stick: { root: string; dispose: () => Promise<void> };
  const on = () => ['--stick', stick.root];
  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'alice', PASSPHRASE);
    for (const args of [
      ['guest', 'create', 'work', '--from', 'default'],
      ['guest', 'config', 'work', 'set', 'memory', '300'],
      ['guest', 'config', 'work', 'add', 'share', 'notes', '/host/notes'],
      ['guest', 'config', 'work', 'commit'],
    ]) {
      const done = await launcher([...args, ...on()]);
      assert.equal(done.exitCode, 0, done.stderr);
    }
  });
  after(async () => {
    if (!stick) return;
    await launcher(['stop', '--force', ...on()]);
    await stick.dispose();
  });

  it('refuses a guest that is only configured (exit 30), starting nothing', async () => {
    const refused = await launcher(['run', '--detach', '--guest', 'work', ...loginArgs('alice'), ...on()], { input: `${PASSPHRASE}\n` });
    assert.equal(refused.exitCode, 30, refused.stderr);
    assert.match(refused.stderr, /guest boot refuses guest work: it is configured/);
    assert.deepEqual(await qemuPidsFor(stick.root), []);
  });

  it('boots it installed, with its platform, and guest list follows its session', async () => {
    assert.equal((await launcher(['guest', 'install', 'work', ...on()])).exitCode, 0);
    const run = await launcher(['run', '--detach', '--guest', 'work', ...loginArgs('alice'), ...on()], { input: `${PASSPHRASE}\n` });
    assert.equal(run.exitCode, 0, run.stderr);
    assert.match(run.stderr, /checking the default payload of guest work/);

    const listed = await launcherJson<Array<{ name: string; state: string; user?: string }>>(['guest', 'list', ...on()]);
    assert.deepEqual(
      listed.json.filter((g) => g.name === 'work').map((g) => [g.state, g.user]),
      [['running', 'alice']],
    );
    // Its memory is the platform's 300 MiB (the kernel keeps some for itself), not the payload's recommendation.
    const memory = await launcher(['exec', '--guest', 'work', ...on(), '--', 'sh', '-c', "grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2"]);
    assert.equal(memory.exitCode, 0, memory.stderr);
    const kib = Number(memory.stdout.trim());
    assert.ok(kib > 200 * 1024 && kib <= 300 * 1024, `MemTotal ${kib} kB`);
    // Its own table rule: /host/notes comes from the stick (FIT), in alice's files.
    const notes = await launcher(['exec', '--guest', 'work', ...on(), '--', 'sh', '-c', 'echo from-work > /host/notes/hello && cat /host/notes/hello']);
    assert.equal(notes.stdout.trim(), 'from-work', notes.stderr);
    // Its disk is its own: named for the guest, not the payload.
    assert.ok(existsSync(join(stick.root, 'users', 'alice', 'disks', 'work.qcow2')));

    const uninstall = await launcher(['guest', 'uninstall', 'work', '--yes', ...on()]);
    assert.equal(uninstall.exitCode, 30);
    assert.match(uninstall.stderr, /it is running/);

    // --guest on the commands that reach the session: another guest's name is refused, naming the one that runs.
    const wrong = await launcher(['stop', '--guest', 'default', ...on()]);
    assert.equal(wrong.exitCode, 8);
    assert.match(wrong.stderr, /no guest "default" is running .*; work is/);
    const status = await launcherJson<{ guest: string }>(['status', '--guest', 'work', ...on()]);
    assert.equal(status.exitCode, 0, status.stderr);
    assert.equal(status.json.guest, 'work');

    assert.equal((await launcher(['stop', '--guest', 'work', ...on()])).exitCode, 0);
    const after = await launcherJson<Array<{ name: string; state: string }>>(['guest', 'list', ...on()]);
    assert.equal(after.json.find((g) => g.name === 'work')?.state, 'installed');
  });
});
