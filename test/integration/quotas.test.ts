// Per-user quotas on a real stick (docs/guests.md, "Per-user quotas"): alice
// may run 300 MiB of guests; two 200 MiB guests started at the same instant
// are sized one after the other (the stick's sizing lock), so exactly one
// boots and the other is refused with exit 35 naming the quota. Then a disk
// quota that the running guest's personal disk already nearly fills: the
// other guest's launch, which would make a 1 GiB personal disk, is refused
// with exit 36 before anything is made. One boot in all.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { addStickUser, freshStick, launcher, launcherJson, loginArgs, qemuPidsFor } from './harness.ts';

const PASSPHRASE = 'quotas passphrase';

describe('per-user quotas on a running stick', function () {
  this.timeout(900_000);
  let stick: { root: string; dispose: () => Promise<void> };
  const on = () => ['--stick', stick.root];
  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'alice', PASSPHRASE);
    for (const guest of ['work', 'play'])
      for (const args of [
        ['guest', 'create', guest, '--from', 'default'],
        ['guest', 'config', guest, 'set', 'memory', '200'],
        ['guest', 'config', guest, 'commit'],
        ['guest', 'install', guest],
      ]) {
        const done = await launcher([...args, ...on()]);
        assert.equal(done.exitCode, 0, `${args.join(' ')}: ${done.stderr}`);
      }
  });
  after(async () => {
    if (!stick) return;
    for (const guest of ['work', 'play']) await launcher(['stop', '--force', '--guest', guest, ...on()]);
    await stick.dispose();
  });

  it("two launches at once under alice's 300 MiB: one runs, the other is refused (35); a disk quota refuses a launch that would make a disk (36)", async () => {
    const set = await launcher(['guest', 'quota', 'alice', '--memory', '300', ...on()]);
    assert.equal(set.exitCode, 0, set.stderr);
    const runs = await Promise.all(
      ['work', 'play'].map((guest) => launcher(['run', '--detach', '--guest', guest, ...loginArgs('alice'), ...on()], { input: `${PASSPHRASE}\n` })),
    );
    const started = ['work', 'play'].filter((_, i) => runs[i]!.exitCode === 0);
    const refused = runs.filter((run) => run.exitCode !== 0);
    assert.equal(started.length, 1, runs.map((run) => `${run.exitCode}: ${run.stderr}`).join('\n'));
    assert.equal(refused[0]!.exitCode, 35, refused[0]!.stderr);
    assert.match(refused[0]!.stderr, new RegExp(`alice's memory quota is 300 MiB: ${started[0]} \\(200 MiB\\) already takes 200 MiB, leaving 100 MiB`));
    assert.equal((await qemuPidsFor(stick.root)).length, 1);
    const other = started[0] === 'work' ? 'play' : 'work';

    const seen = await launcherJson<{ memoryMiB: number; used: { memoryMiB: number; diskMiB: number; running: string[] } }>([
      'guest',
      'quota',
      'alice',
      ...on(),
    ]);
    assert.equal(seen.exitCode, 0, seen.stderr);
    assert.deepEqual([seen.json.memoryMiB, seen.json.used.memoryMiB, seen.json.used.running], [300, 200, started]);
    // The running guest's personal disk counts at its full 1 GiB.
    assert.ok(seen.json.used.diskMiB >= 1024, `${seen.json.used.diskMiB} MiB held`);

    // Memory is no longer the bound; the disk is: the other guest would add a 1 GiB personal disk.
    const disk = seen.json.used.diskMiB + 100;
    for (const args of [
      ['alice', '--memory', 'none'],
      ['alice', '--disk', String(disk)],
    ])
      assert.equal((await launcher(['guest', 'quota', ...args, ...on()])).exitCode, 0);
    const full = await launcher(['run', '--detach', '--guest', other, ...loginArgs('alice'), ...on()], { input: `${PASSPHRASE}\n` });
    assert.equal(full.exitCode, 36, full.stderr);
    assert.match(full.stderr, new RegExp(`alice's disk quota is ${disk} MiB: .* and starting ${other} would add a personal disk for ${other} \\(1024 MiB\\)`));
    assert.equal(existsSync(join(stick.root, 'users', 'alice', 'disks', `${other}.qcow2`)), false, 'nothing was made');
    assert.equal((await qemuPidsFor(stick.root)).length, 1);
    const listed = await launcherJson<Array<{ name: string; state: string }>>(['guest', 'list', ...on()]);
    assert.deepEqual(
      listed.json
        .filter((g) => g.name !== 'default')
        .map((g) => [g.name, g.state])
        .sort(),
      [
        [started[0], 'running'],
        [other, 'installed'],
      ].sort(),
    );
    assert.equal((await launcher(['stop', '--guest', started[0]!, ...on()])).exitCode, 0);
  });
});
