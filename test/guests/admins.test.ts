// Two levels of administration: the stick's owner does everything; a guest
// administrator only what was granted on the guests granted, sees no other
// guest, and is refused the rest with exit 32 (docs/exit-codes.md) after
// signing in; nobody unsigned on a stick with an owner. Through the CLI with
// real users and passphrases; no guest boots.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { NotPermittedError } from '../../src/errors.ts';
import { type Admins, authorize, grant, revoke } from '../../src/guests/guest-admins.ts';
import { payloadBuilt } from './helpers.ts';

const launcherPath = new URL('../../launcher', import.meta.url).pathname;
const PASSPHRASE = 'admins test passphrase';

describe('guest administrators: the rules', () => {
  const admins: Admins = grant({ owner: 'olga', grants: {} }, 'bob', 'work', ['login', 'manage']);
  const refused = (user: string | undefined, ask: Parameters<typeof authorize>[2], reason: string) =>
    assert.throws(
      () => authorize(admins, user, ask),
      (error: unknown) => error instanceof NotPermittedError && error.exitCode === 32 && error.details['reason'] === reason,
    );

  it('the owner may do everything; nobody may do anything unsigned', () => {
    assert.doesNotThrow(() => authorize(admins, 'olga', { global: 'delete guests' }));
    assert.doesNotThrow(() => authorize(admins, 'olga', { guest: 'play', right: 'manage', says: 'configure' }));
    refused(undefined, { guest: 'work', right: 'login', says: 'run' }, 'sign-in');
  });

  it('a guest administrator has the rights granted on the guests granted, and no other', () => {
    assert.doesNotThrow(() => authorize(admins, 'bob', { guest: 'work', right: 'manage', says: 'configure' }));
    refused('bob', { guest: 'work', right: 'clone', says: 'clone' }, 'right');
    refused('bob', { guest: 'play', right: 'login', says: 'run' }, 'right');
    refused('bob', { global: 'create guests' }, 'global');
    refused('carol', { guest: 'work', right: 'login', says: 'run' }, 'right');
  });

  it('revoke takes the named rights, or all; a stick without an owner has one level', () => {
    assert.deepEqual(revoke(admins, 'bob', 'work', ['manage']).grants, { bob: { work: ['login'] } });
    assert.deepEqual(revoke(admins, 'bob', 'work', []).grants, {});
    assert.doesNotThrow(() => authorize({ grants: {} }, undefined, { global: 'delete guests' }));
  });
});

describe('guest administrators on a stick', function () {
  this.timeout(300_000);
  let parent: string;
  let root: string;
  before(async function () {
    if (!payloadBuilt()) this.skip();
    parent = await mkdtemp(join(tmpdir(), 'pocketvm-guest-admins-'));
    root = join(parent, 'stick');
    await execa(launcherPath, ['init-stick', root]);
    for (const user of ['olga', 'bob']) await execa(launcherPath, ['user', 'add', user, '--passphrase-stdin', '--stick', root], { input: `${PASSPHRASE}\n` });
  });
  after(async () => {
    if (parent) await rm(parent, { recursive: true, force: true });
  });

  /** `launcher guest ARGS` signed in as `user` (or not signed in). */
  const as = async (user: string | undefined, args: string[]) => {
    const sign = user ? ['--user', user, '--passphrase-stdin'] : [];
    const result = await execa(launcherPath, ['guest', ...args, ...sign, '--stick', root], { reject: false, input: user ? `${PASSPHRASE}\n` : '' });
    return { code: result.exitCode, stdout: String(result.stdout), stderr: String(result.stderr) };
  };

  it('the first owner signs in as themselves; then only the owner administers the stick', async () => {
    assert.equal((await as('bob', ['owner', 'olga'])).code, 2, 'nobody makes someone else the first owner');
    assert.equal((await as('olga', ['owner', 'olga'])).code, 0);
    for (const args of [
      ['create', 'work'],
      ['create', 'play'],
      ['install', 'work'],
      ['install', 'play'],
      ['grant', 'bob', 'work', 'login', 'manage'],
    ])
      assert.equal((await as('olga', args)).code, 0, args.join(' '));
    assert.equal((await as('bob', ['owner', 'bob'])).code, 32);
  });

  it('a guest administrator sees only their guests and is refused outside their rights with exit 32', async () => {
    const listed = await as('bob', ['list', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(
      (JSON.parse(listed.stdout) as Array<{ name: string }>).map((g) => g.name),
      ['work'],
    );
    assert.equal((await as('bob', ['config', 'work', 'set', 'cpus', '1'])).code, 0, 'manage: configure work');

    const refusals: Array<[string[], RegExp]> = [
      [['config', 'play', 'show'], /bob has no guest named play/],
      [['config', 'play', 'set', 'cpus', '1'], /bob has no guest named play/],
      [['clone', 'work', 'mine'], /the right "clone" was not granted/],
      [['delete', 'work', '--yes'], /may not delete guests: that is the stick owner's/],
      [['uninstall', 'work', '--yes'], /may not uninstall guests/],
      [['create', 'extra'], /may not create guests/],
      [['grant', 'bob', 'play', 'manage'], /may not grant or revoke rights/],
    ];
    for (const [args, message] of refusals) {
      const result = await as('bob', args);
      assert.equal(result.code, 32, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
    const unsigned = await as(undefined, ['list']);
    assert.equal(unsigned.code, 32);
    assert.match(unsigned.stderr, /sign in first/);
  });

  it('run --guest of a guest not granted is refused after sign-in without naming its state', async () => {
    const run = await execa(launcherPath, ['run', '--detach', '--guest', 'play', '--user', 'bob', '--passphrase-stdin', '--stick', root], {
      reject: false,
      input: `${PASSPHRASE}\n`,
    });
    assert.equal(run.exitCode, 32);
    assert.match(String(run.stderr), /bob has no guest named play/);
    assert.doesNotMatch(String(run.stderr), /installed/);
  });

  it('with the clone right, the clone is theirs with the same rights; a deleted guest keeps no grants', async () => {
    assert.equal((await as('olga', ['grant', 'bob', 'work', 'clone'])).code, 0);
    assert.equal((await as('bob', ['clone', 'work', 'mine'])).code, 0);
    const listed = await as('bob', ['list', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(
      (JSON.parse(listed.stdout) as Array<{ name: string }>).map((g) => g.name),
      ['mine', 'work'],
    );
    assert.equal((await as('olga', ['delete', 'mine'])).code, 0);
    assert.equal((await as('olga', ['create', 'mine'])).code, 0);
    const after = await as('bob', ['list', '--json']);
    assert.equal(after.code, 0, after.stderr);
    assert.deepEqual(
      (JSON.parse(after.stdout) as Array<{ name: string }>).map((g) => g.name),
      ['work'],
      'a new guest of the same name is not theirs',
    );
  });
});
