// Passphrase prompts at a real (pseudo) terminal: Ctrl-C is exit 130 with no
// message (not "internal error"), and a typo asks again a few times instead
// of ending the command.
// Test tier: integration (runs the launcher as a process on a pseudo-terminal).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { addStickUser, freshStick, launcher } from '../integration/harness.ts';
import { count, launcherInPty } from './pty.ts';

describe('prompts at a terminal', function () {
  this.timeout(240_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'alice', 'alice passphrase');
  });
  after(() => stick.dispose());

  it('Ctrl-C at the new-passphrase prompt of user add: exit 130, no message, no user made', async () => {
    const result = await launcherInPty(['user', 'add', 'bob', '--stick', stick.root], [{ expect: /new passphrase for bob/, send: '\x03' }]);
    assert.equal(result.exitCode, 130, result.output);
    assert.doesNotMatch(result.output, /error|bug/i);
    assert.equal(existsSync(join(stick.root, 'users', 'bob')), false);
  });

  it("Ctrl-C at run's login prompt: exit 130, no message, no lock left", async () => {
    const result = await launcherInPty(['run', '--stick', stick.root, '--user', 'alice'], [{ expect: /passphrase for alice/, send: '\x03' }]);
    assert.equal(result.exitCode, 130, result.output);
    assert.doesNotMatch(result.output, /error|bug/i);
    assert.equal(existsSync(join(stick.root, 'run', 'lock.json')), false);
  });

  it("Ctrl-C at run --detach's login prompt: exit 130, no message; the session process lets the stick go", async () => {
    const result = await launcherInPty(['run', '--detach', '--stick', stick.root, '--user', 'alice'], [{ expect: /passphrase for alice/, send: '\x03' }]);
    assert.equal(result.exitCode, 130, result.output);
    assert.doesNotMatch(result.output, /error|bug/i);
    const lockFile = join(stick.root, 'run', 'lock.json');
    for (let i = 0; i < 100 && existsSync(lockFile); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(existsSync(lockFile), false);
  });

  it('user add: a mismatched confirmation asks again; the second try creates the user', async () => {
    const result = await launcherInPty(
      ['user', 'add', 'carol', '--stick', stick.root],
      [
        { expect: /new passphrase for carol/, send: 'carol passphrase\r' },
        { expect: /same passphrase again/, send: 'carol typo\r' },
        { expect: /try again[\s\S]*new passphrase for carol/, send: 'carol passphrase\r' },
        { expect: /same passphrase again/, send: 'carol passphrase\r' },
      ],
    );
    assert.equal(result.exitCode, 0, result.output);
    assert.match(result.output, /the two passphrases differ; try again/);
    assert.match(result.output, /created carol/);
    const list = await launcher(['user', 'list', '--stick', stick.root]);
    assert.match(list.stdout, /^carol /m);
  });

  it('user add: three typos end the command (exit 2), nothing made', async () => {
    const steps = [];
    for (let i = 0; i < 3; i++) steps.push({ expect: i === 0 ? /new passphrase for dave/ : /try again[\s\S]*new passphrase for dave/, send: 'short\r' });
    const result = await launcherInPty(['user', 'add', 'dave', '--stick', stick.root], steps);
    assert.equal(result.exitCode, 2, result.output);
    assert.equal(count(result.output, /the passphrase is too short; try again/), 2);
    assert.equal(existsSync(join(stick.root, 'users', 'dave')), false);
  });

  it('run: a wrong passphrase at the login prompt asks again, three tries, then exit 11; no QEMU, no lock', async () => {
    const steps = [];
    for (let i = 0; i < 3; i++)
      steps.push({ expect: i === 0 ? /passphrase for alice/ : /try again[\s\S]*passphrase for alice/, send: 'not alice passphrase\r' });
    const result = await launcherInPty(['run', '--stick', stick.root, '--user', 'alice'], steps);
    assert.equal(result.exitCode, 11, result.output);
    assert.equal(count(result.output, /wrong passphrase for alice; try again/), 2);
    assert.equal(existsSync(join(stick.root, 'run', 'lock.json')), false);
  });

  it('user passwd: a wrong current passphrase asks again before the new one is asked for', async () => {
    const result = await launcherInPty(
      ['user', 'passwd', 'alice', '--stick', stick.root],
      [
        { expect: /current passphrase for alice/, send: 'alice typo passphrase\r' },
        { expect: /try again[\s\S]*current passphrase for alice/, send: 'alice passphrase\r' },
        { expect: /new passphrase for alice/, send: 'alice new passphrase\r' },
        { expect: /same passphrase again/, send: 'alice new passphrase\r' },
      ],
    );
    assert.equal(result.exitCode, 0, result.output);
    assert.equal(count(result.output, /wrong passphrase for alice; try again/), 1);
    assert.match(result.output, /changed the passphrase of alice/);
  });
});
