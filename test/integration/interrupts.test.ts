// Interrupting a boot (issue 16): Ctrl-C on an attached `run`, Ctrl-C on
// `run --detach` while it waits for readiness, and `launcher stop` while the
// guest boots each cancel the boot: exit 130 saying so, QEMU gone, the stick
// lock released, nothing for the next launch to recover.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { addStickUser, freshStick, launcher, launcherPath, loginArgs, qemuPidsFor, waitUntil } from './harness.ts';

const passphrase = 'interrupt test passphrase';

/** Starts the launcher in a process group of its own, as a terminal runs a command. */
function startInGroup(args: string[]): { child: ResultPromise; output: () => string } {
  const child = execa(launcherPath, args, { reject: false, detached: true, input: `${passphrase}\n`, all: true, env: { NO_COLOR: '1' }, timeout: 240_000 });
  let text = '';
  child.all?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { child, output: () => text };
}

describe('interrupting a boot (boots the real guest)', function () {
  this.timeout(300_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  const lockFile = () => join(stick.root, 'run', 'lock.json');
  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'tester', passphrase);
  });
  after(async () => {
    await launcher(['stop', '--force', '--stick', stick.root]);
    await stick.dispose();
  });

  async function assertNothingLeft(): Promise<void> {
    assert.equal(existsSync(lockFile()), false, 'the stick lock is released');
    assert.deepEqual(await qemuPidsFor(stick.root), [], 'no QEMU is left running');
  }

  it('Ctrl-C (SIGINT to the process group) during an attached run stops the boot: exit 130, no lock, no QEMU', async () => {
    const { child, output } = startInGroup(['run', '--stick', stick.root, ...loginArgs('tester')]);
    assert.ok(await waitUntil(() => output().includes('booting default'), 120_000), output());
    process.kill(-child.pid!, 'SIGINT');
    const result = await child;
    assert.equal(result.exitCode, 130, output());
    assert.match(output(), /SIGINT: the boot of default was cancelled; no QEMU is left running and the stick is released/);
    await assertNothingLeft();
    // The next launch finds nothing to recover.
    const status = await launcher(['status', '--stick', stick.root]);
    assert.equal(status.exitCode, 8, status.stderr);
    assert.doesNotMatch(status.stderr, /did not end cleanly/);
  });

  it('Ctrl-C while the login still waits on the terminal ends run at once (exit 130, no lock)', async () => {
    // script(1): the launcher's stdin is a terminal that never reaches EOF; \x03 there is Ctrl-C.
    const child = execa('script', ['-qfec', `${launcherPath} run --stick ${stick.root} --user tester --passphrase-stdin`, '/dev/null'], {
      reject: false,
      env: { NO_COLOR: '1' },
      timeout: 120_000,
    });
    let text = '';
    child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
    assert.ok(await waitUntil(() => text.includes('accelerators to try'), 60_000), text);
    child.stdin?.write('\x03');
    const result = await child;
    assert.equal(result.exitCode, 130, text);
    assert.match(text, /SIGINT: the boot of default was cancelled/);
    await assertNothingLeft();
  });

  it('Ctrl-C on run --detach while it waits for readiness cancels the boot in the background session', async () => {
    const { child, output } = startInGroup(['run', '--detach', '--stick', stick.root, ...loginArgs('tester')]);
    assert.ok(await waitUntil(() => output().includes('booting default'), 120_000), output());
    process.kill(-child.pid!, 'SIGINT');
    const result = await child;
    assert.equal(result.exitCode, 130, output());
    assert.match(output(), /the boot of default was cancelled/);
    await assertNothingLeft();
  });

  it('launcher stop during a boot cancels it', async () => {
    const { child, output } = startInGroup(['run', '--detach', '--stick', stick.root, ...loginArgs('tester')]);
    assert.ok(await waitUntil(() => output().includes('booting default'), 120_000), output());
    const status = await launcher(['status', '--stick', stick.root]);
    assert.match(status.stdout, /default is starting/);
    const stopped = await launcher(['stop', '--stick', stick.root]);
    assert.equal(stopped.exitCode, 0, stopped.stderr);
    assert.match(stopped.stdout, /cancelled the boot of default/);
    const result = await child;
    assert.equal(result.exitCode, 130, output());
    await assertNothingLeft();
    // The stick is free for the next launch at once, with nothing to recover.
    const after = await launcher(['run', '--detach', '--stick', stick.root, ...loginArgs('tester')], { input: `${passphrase}\n` });
    assert.equal(after.exitCode, 0, after.stderr);
    assert.doesNotMatch(after.stderr, /did not end cleanly/);
    const stop = await launcher(['stop', '--stick', stick.root]);
    assert.equal(stop.exitCode, 0, stop.stderr);
  });
});
