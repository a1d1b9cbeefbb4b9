// A guest's configuration: bad input to set/add/remove stages nothing (exit
// 31), verify names every problem at once, commit is all or nothing (a
// refused commit leaves guest.json byte for byte), revert drops the staged
// changes, and a commit is refused in the states that depend on the old one.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { GuestConfigError, GuestStateError } from '../../src/errors.ts';
import { addResource, type GuestConfig, removeResource, setProperty, verifyConfig } from '../../src/guests/guest-config.ts';
import { commitGuest, createGuest, installGuest, revertGuest, stageChange, verifyGuest } from '../../src/guests/guest-lifecycle.ts';
import { guestPaths } from '../../src/guests/guest-store.ts';
import { savedStatePaths } from '../../src/session/saved-state.ts';
import type { StickLayout } from '../../src/stick/layout.ts';
import { makeStick, payloadBuilt } from './helpers.ts';

const base: GuestConfig = { network: 'none', display: 'none', shares: [], disks: [], devices: [] };
const needs = { minimumMiB: 128, minimumCpus: 1 };

describe('guest config: staging', () => {
  it('refuses bad input with exit 31 and a hint', () => {
    const cases: Array<() => unknown> = [
      () => setProperty(base, 'colour', 'red'),
      () => setProperty(base, 'memory', '-5'),
      () => setProperty(base, 'memory', '12abc'),
      () => setProperty(base, 'network', 'bridge'),
      () => addResource(base, { kind: 'share', name: 'x', args: [] }),
      () => addResource(base, { kind: 'share', name: 'x', args: ['/host/x'], table: 'XYZ' }),
      () => addResource(base, { kind: 'disk', name: 'd', args: ['lots'] }),
      () => addResource(base, { kind: 'device', name: 'd', args: ['gpu'] }),
      () => addResource(base, { kind: 'printer', name: 'p', args: [] }),
      () => addResource(base, { kind: 'share', name: 'bad name!', args: ['/host/x'] }),
      () => removeResource(base, 'share', 'none-such'),
    ];
    for (const run of cases)
      assert.throws(
        run,
        (error: unknown) => error instanceof GuestConfigError && error.exitCode === 31 && /nothing was staged/.test(error.message) && !!error.hint,
      );
  });

  it('a name taken twice is refused; auto clears memory', () => {
    const one = addResource(base, { kind: 'disk', name: 'scratch', args: ['64'] });
    assert.throws(() => addResource(one, { kind: 'disk', name: 'scratch', args: ['32'] }), /already has a disk named scratch/);
    const sized = setProperty(base, 'memory', '512');
    assert.equal(sized.memoryMiB, 512);
    assert.equal(setProperty(sized, 'memory', 'auto').memoryMiB, undefined);
    assert.equal(base.memoryMiB, undefined, 'changes never touch the configuration they start from');
  });

  it('mac takes a unicast address, locally or globally administered, in either case and with dashes; auto clears it', () => {
    assert.equal(setProperty(base, 'mac', '52:54:00:AA:BB:01').mac, '52:54:00:aa:bb:01');
    assert.equal(setProperty(base, 'mac', '00-50-56-01-02-03').mac, '00:50:56:01:02:03');
    assert.equal(setProperty(setProperty(base, 'mac', '52:54:00:aa:bb:01'), 'mac', 'auto').mac, undefined);
    for (const [mac, why] of [
      ['01:00:5e:00:00:01', /multicast/],
      ['ff:ff:ff:ff:ff:ff', /multicast/],
      ['00:00:00:00:00:00', /all-zero/],
      ['52:54:00:aa:bb', /not a MAC address/],
      ['02:70:76:6d:39:01', /9P namespace card/],
      ['52:54:00:aa:bb:zz', /not a MAC address/],
    ] as const)
      assert.throws(
        () => setProperty(base, 'mac', mac),
        (error: unknown) => error instanceof GuestConfigError && error.exitCode === 31 && why.test(error.message),
        mac,
      );
    // A configuration file with a MAC no card may have (edited by hand) is one verify problem.
    assert.deepEqual(verifyConfig({ ...base, mac: '03:00:00:00:00:01' }, needs), [
      'mac: 03:00:00:00:00:01 is a multicast address; a network card needs a unicast one (first octet even)',
    ]);
    assert.deepEqual(verifyConfig({ ...base, mac: '52:54:00:aa:bb:01' }, needs), []);
  });

  it('a share with a host path is a host folder (FET, copy-on-write); without one it is on the stick (FIT)', () => {
    const c = addResource(addResource(base, { kind: 'share', name: 'docs', args: ['/host/docs', '/home/me/Documents'] }), {
      kind: 'share',
      name: 'notes',
      args: ['/host/notes'],
    });
    assert.deepEqual(c.shares, [
      { name: 'docs', table: 'FET', guestPath: '/host/docs', hostPath: '/home/me/Documents', mode: 'cow' },
      { name: 'notes', table: 'FIT', guestPath: '/host/notes' },
    ]);
  });

  it('verify names every problem, not the first', () => {
    const bad: GuestConfig = {
      memoryMiB: 64,
      cpus: 1,
      network: 'none',
      display: 'page',
      shares: [
        { name: 'a', table: 'FIT', guestPath: 'relative' },
        { name: 'b', table: 'FIT', guestPath: '/etc/passwd' },
        { name: 'c', table: 'FET', guestPath: '/host/c' },
        { name: 'd', table: 'FET', guestPath: '/host/c', hostPath: 'not/absolute' },
        { name: 'e', table: 'FIT', guestPath: '/host/e', hostPath: '/x' },
      ],
      disks: [{ name: 'big', sizeMiB: 70_000 }],
      devices: [],
    };
    const problems = verifyConfig(bad, needs);
    for (const expected of [
      /memory 64 MiB is below the 128/,
      /share a: .*not an absolute/,
      /share b: .*not under \/host/,
      /share c: .*needs a host path/,
      /share d: .*also share c/,
      /share d: host path not\/absolute is not absolute/,
      /share e: .*takes no host path/,
      /extra disks add up to 70000/,
      /display page needs a tablet/,
    ])
      assert.ok(
        problems.some((p) => expected.test(p)),
        `${expected} in ${problems.join(' | ')}`,
      );
    assert.deepEqual(verifyConfig(base, needs), []);
  });
});

describe('guest config: commit and revert on a stick', function () {
  this.timeout(60_000);
  let stick: { layout: StickLayout; remove: () => Promise<void> };
  before(async function () {
    if (!payloadBuilt()) this.skip();
    stick = await makeStick('pocketvm-guest-config-');
    await createGuest(stick.layout, 'work', 'default');
  });
  after(async () => {
    await stick?.remove();
  });

  it('a commit with problems changes nothing; a good one replaces the configuration and drops the staged file', async () => {
    const { layout } = stick;
    const paths = guestPaths(layout, 'work');
    const before = await readFile(paths.record);
    await stageChange(layout, 'work', (c) => setProperty(c, 'memory', '64'));
    await stageChange(layout, 'work', (c) => addResource(c, { kind: 'share', name: 'x', args: ['/nope'] }));
    const verification = await verifyGuest(layout, 'work');
    assert.equal(verification.staged, true);
    assert.equal(verification.problems.length, 2);
    await assert.rejects(
      commitGuest(layout, 'work'),
      (error: unknown) =>
        error instanceof GuestConfigError && (error.details['problems'] as string[]).length === 2 && /nothing was committed/.test(error.message),
    );
    assert.deepEqual(await readFile(paths.record), before, 'guest.json unchanged, byte for byte');
    await stageChange(layout, 'work', (c) => removeResource(setProperty(c, 'memory', '256'), 'share', 'x'));
    const committed = await commitGuest(layout, 'work');
    assert.equal(committed.committed, true);
    assert.equal((JSON.parse(await readFile(paths.record, 'utf8')) as { config: GuestConfig }).config.memoryMiB, 256);
    assert.ok(!existsSync(paths.staged));
    assert.equal((await commitGuest(layout, 'work')).committed, false, 'nothing staged: nothing to commit');
  });

  it('revert drops the staged changes and keeps the committed ones', async () => {
    const { layout } = stick;
    await stageChange(layout, 'work', (c) => setProperty(c, 'cpus', '2'));
    assert.deepEqual(await revertGuest(layout, 'work'), { reverted: true });
    const verification = await verifyGuest(layout, 'work');
    assert.equal(verification.staged, false);
    assert.equal(verification.config.cpus, undefined);
    assert.equal(verification.config.memoryMiB, 256);
  });

  it('a suspended guest stages but does not commit: its saved state needs the platform it was saved with', async () => {
    const { layout } = stick;
    await installGuest(layout, 'work');
    const saved = savedStatePaths(layout, 'alice', 'work');
    await mkdir(saved.dir, { recursive: true });
    await writeFile(saved.file, 'saved');
    await stageChange(layout, 'work', (c) => setProperty(c, 'memory', '512'));
    await assert.rejects(commitGuest(layout, 'work'), (error: unknown) => error instanceof GuestStateError && /it is suspended/.test(error.message));
  });
});
