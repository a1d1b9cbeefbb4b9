// Test tier: integration (boots QEMU: SIGKILL at the failpoints of guest ready, boot and suspend)
// Fault injection for the power verbs (the stick-only commands are in
// test/guests/fault-injection.test.ts): the launcher — the foreground one, or
// the session process behind it, which inherits POCKETVM_FAILPOINT when it is
// started — is SIGKILLed at each named step of ready, boot and suspend. Each
// kill ends in a state `guest list` shows (never a stale ready or running,
// never a list that fails), QEMU dies with its session (the orphan guard),
// and the next command a person types recovers with no manual step. One
// chain, so only two real boots happen (a cold boot and a resume).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { addStickUser, freshStick, launcher, launcherJson, loginArgs, qemuPidsFor } from './harness.ts';

const PASSPHRASE = 'power faults passphrase';

describe('guest ready, boot and suspend under SIGKILL at their failpoints', function () {
  this.timeout(1_800_000);
  let stick: { root: string; dispose: () => Promise<void> };
  const on = () => ['--stick', stick.root];
  const signedIn = () => [...loginArgs('alice'), ...on()];
  const armed = (point: string) => ({ env: { NO_COLOR: '1', POCKETVM_FAILPOINT: point }, timeout: 900_000 });
  const stateOf = async () => {
    const listed = await launcherJson<Array<{ name: string; state: string }>>(['guest', 'list', ...on()]);
    assert.equal(listed.exitCode, 0, `guest list answers: ${listed.stderr}`);
    return listed.json.find((g) => g.name === 'work')?.state;
  };
  /** QEMU dies with its killed session: its orphan guard sees the parent gone. */
  const noQemu = async () => {
    let pids: number[] = [];
    for (let i = 0; i < 60 && (pids = await qemuPidsFor(stick.root)).length > 0; i++) await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(pids, [], 'no QEMU left running');
  };

  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'alice', PASSPHRASE);
    for (const args of [
      ['guest', 'create', 'work', '--from', 'default'],
      ['guest', 'install', 'work'],
    ])
      assert.equal((await launcher([...args, ...on()])).exitCode, 0);
  });
  after(async () => {
    if (!stick) return;
    await launcher(['stop', '--force', ...on()]);
    await stick.dispose();
  });

  it('ready:signed-in — the launcher dies after the sign-in: installed; guest ready then works', async () => {
    const killed = await launcher(['guest', 'ready', 'work', ...signedIn()], { input: `${PASSPHRASE}\n`, ...armed('ready:signed-in') });
    assert.ok([-1, 137].includes(killed.exitCode), `killed by its signal (exit ${killed.exitCode}): ${killed.stderr}`);
    assert.doesNotMatch(killed.stdout, /is ready/);
    assert.equal(await stateOf(), 'installed');
    await noQemu();
  });

  it('ready:held — the session dies with QEMU paused and its control channel named: installed; guest ready recovers', async () => {
    const killed = await launcher(['guest', 'ready', 'work', ...signedIn()], { input: `${PASSPHRASE}\n`, ...armed('ready:held') });
    assert.notEqual(killed.exitCode, 0);
    assert.match(killed.stderr, /session process ended before the guest was ready/);
    assert.equal(await stateOf(), 'installed', 'never a stale ready');
    await noQemu();
    // The recovery: the same command again. Its session carries the next trial's failpoint.
    const again = await launcher(['guest', 'ready', 'work', ...signedIn()], { input: `${PASSPHRASE}\n`, ...armed('boot:released') });
    assert.equal(again.exitCode, 0, again.stderr);
    assert.equal(await stateOf(), 'ready');
  });

  it('boot:released — the session dies as the boot is asked: installed; guest boot (cold) recovers', async () => {
    const killed = await launcher(['guest', 'boot', 'work', ...on()], { timeout: 900_000 });
    assert.notEqual(killed.exitCode, 0, 'the boot did not happen');
    assert.equal(await stateOf(), 'installed', 'never a stale ready');
    await noQemu();
    const booted = await launcher(['guest', 'boot', 'work', ...signedIn()], { input: `${PASSPHRASE}\n`, ...armed('suspend:saved') });
    assert.equal(booted.exitCode, 0, booted.stderr);
    assert.equal(await stateOf(), 'running');
  });

  it('suspend:saved — the session dies once the state is on the stick: suspended; guest boot resumes it', async () => {
    const ran = await launcher(['exec', '--guest', 'work', ...on(), '--', 'sh', '-c', 'echo kept > ~/mark']);
    assert.equal(ran.exitCode, 0, ran.stderr);
    const killed = await launcher(['guest', 'suspend', 'work', ...on()], { timeout: 900_000 });
    assert.notEqual(killed.exitCode, 0);
    assert.equal(await stateOf(), 'suspended');
    assert.ok(existsSync(join(stick.root, 'users', 'alice', 'state', 'work.vmstate')));
    await noQemu();
    const resumed = await launcherJson<{ from: string; resumed?: unknown }>(['guest', 'boot', 'work', ...signedIn()], {
      input: `${PASSPHRASE}\n`,
      timeout: 900_000,
    });
    assert.equal(resumed.exitCode, 0, resumed.stderr);
    assert.ok(resumed.json.resumed, 'resumed from the saved state');
    assert.equal(await stateOf(), 'running');
    assert.equal((await launcher(['exec', '--guest', 'work', ...on(), '--', 'sh', '-c', 'cat ~/mark'])).stdout.trim(), 'kept');
    assert.equal((await launcher(['guest', 'shutdown', 'work', ...on()], { timeout: 900_000 })).exitCode, 0);
    assert.equal(await stateOf(), 'installed');
  });
});
