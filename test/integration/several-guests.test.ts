// Several guests at once (docs/guests.md, "Several at once"): the default
// guest and a second one made with `guest create` run from one stick at the
// same time, as the same user, with different table rules. Each has its own
// session (lock, control channel, logs), its own registry and its own FIT
// files: a value or a file one writes the other never sees. Commands that
// need one session name both when none is given (exit 33); `status` shows
// both; `eject` alone ends both. Two boots in all.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { addStickUser, freshStick, launcher, launcherJson, loginArgs, qemuPidsFor } from './harness.ts';

const PASSPHRASE = 'several guests passphrase';

describe('several guests running from one stick at once', function () {
  this.timeout(900_000);
  let stick: { root: string; dispose: () => Promise<void> };
  const on = () => ['--stick', stick.root];
  const inGuest = (guest: string, script: string) => launcher(['exec', '--guest', guest, ...on(), '--', 'sh', '-c', script]);
  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'alice', PASSPHRASE);
    for (const args of [
      // The default payload's guest gets a record, so it has a platform of its own.
      ['guest', 'create', 'default', '--from', 'default'],
      ['guest', 'config', 'default', 'set', 'memory', '200'],
      ['guest', 'config', 'default', 'add', 'share', 'notes', '/host/notes'],
      ['guest', 'config', 'default', 'commit'],
      ['guest', 'install', 'default'],
      ['guest', 'create', 'play', '--from', 'default'],
      ['guest', 'config', 'play', 'set', 'memory', '200'],
      ['guest', 'config', 'play', 'add', 'share', 'notes', '/host/notes'],
      ['guest', 'config', 'play', 'add', 'share', 'games', '/host/games'],
      ['guest', 'config', 'play', 'commit'],
      ['guest', 'install', 'play'],
    ]) {
      const done = await launcher([...args, ...on()]);
      assert.equal(done.exitCode, 0, `${args.join(' ')}: ${done.stderr}`);
    }
  });
  after(async () => {
    if (!stick) return;
    for (const guest of ['default', 'play']) await launcher(['stop', '--force', '--guest', guest, ...on()]);
    await stick.dispose();
  });

  it('boots both, each with its own session, registry and files; eject alone ends both', async () => {
    for (const guest of ['default', 'play']) {
      const run = await launcher(['run', '--detach', '--guest', guest, ...loginArgs('alice'), ...on()], { input: `${PASSPHRASE}\n` });
      assert.equal(run.exitCode, 0, `run --guest ${guest}: ${run.stderr}`);
    }
    assert.equal((await qemuPidsFor(stick.root)).length, 2);
    const listed = await launcherJson<Array<{ name: string; state: string; user?: string }>>(['guest', 'list', ...on()]);
    assert.deepEqual(
      listed.json.map((g) => [g.name, g.state, g.user]),
      [
        ['default', 'running', 'alice'],
        ['play', 'running', 'alice'],
      ],
    );
    // Each session its own lock; the default guest's is the stick's old one. The second was sized beside the first.
    assert.ok(existsSync(join(stick.root, 'run', 'lock.json')));
    assert.ok(existsSync(join(stick.root, 'run', 'play.lock.json')));
    assert.match(readFileSync(join(stick.root, 'run', 'play.qemu.log'), 'utf8'), /sizing: sharing the host with default \(200 MiB, 1 vCPU\)/);

    // Without --guest: exec and stop need one and name both (exit 33); status shows both.
    for (const command of [['exec', '--', 'true'], ['stop']]) {
      const refused = await launcher([...command.slice(0, 1), ...on(), ...command.slice(1)]);
      assert.equal(refused.exitCode, 33, refused.stderr);
      assert.match(refused.stderr, /2 guests are running from .* \(default, play\): say which with --guest/);
    }
    const status = await launcherJson<Array<{ guest: string; state: string }>>(['status', ...on()]);
    assert.equal(status.exitCode, 0, status.stderr);
    assert.deepEqual(
      status.json.map((s) => [s.guest, s.state]),
      [
        ['default', 'ready'],
        ['play', 'ready'],
      ],
    );

    // Registries: the same key set in each, each reads back its own.
    for (const guest of ['default', 'play']) {
      const set = await inGuest(guest, `reg set App Who string ${guest}`);
      assert.equal(set.exitCode, 0, set.stderr);
    }
    for (const guest of ['default', 'play']) assert.equal((await inGuest(guest, 'reg get App Who')).stdout, `${guest}\n`);

    // Files: the same FIT path in each holds that guest's own file; only play has /host/games.
    for (const guest of ['default', 'play']) {
      const wrote = await inGuest(guest, `echo from-${guest} > /host/notes/who && echo ${guest}-only > /host/notes/${guest}.txt`);
      assert.equal(wrote.exitCode, 0, wrote.stderr);
    }
    for (const [guest, other] of [
      ['default', 'play'],
      ['play', 'default'],
    ] as const) {
      const seen = await inGuest(guest, `cat /host/notes/who; ls /host/notes`);
      assert.equal(seen.stdout, `from-${guest}\n${guest}.txt\nwho\n`, `${guest} sees ${seen.stdout} ${seen.stderr}`);
      assert.notEqual((await inGuest(guest, `cat /host/notes/${other}.txt`)).exitCode, 0);
    }
    assert.equal((await inGuest('play', 'echo saved > /host/games/save && cat /host/games/save')).stdout, 'saved\n');
    assert.notEqual((await inGuest('default', 'ls /host/games')).exitCode, 0);
    // On the stick: the default guest's data where it always was, play's in its own folder.
    const alice = join(stick.root, 'users', 'alice');
    for (const path of ['registry.sqlite', 'files', 'guests/play/registry.sqlite', 'guests/play/files']) assert.ok(existsSync(join(alice, path)), path);

    // eject without --guest ends both.
    const eject = await launcherJson<{ action: string; guests: Array<{ guest: string }>; safeToRemove: boolean }>(['eject', ...on()]);
    assert.equal(eject.exitCode, 0, eject.stderr);
    assert.deepEqual(
      eject.json.guests.map((g) => g.guest),
      ['default', 'play'],
    );
    assert.equal(eject.json.safeToRemove, true);
    assert.deepEqual(await qemuPidsFor(stick.root), []);
    const after = await launcherJson<Array<{ name: string; state: string }>>(['guest', 'list', ...on()]);
    assert.deepEqual(
      after.json.map((g) => [g.name, g.state]),
      [
        ['default', 'installed'],
        ['play', 'installed'],
      ],
    );
  });
});
