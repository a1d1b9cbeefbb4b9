// The zones-style power verbs on one real console guest (the default
// payload): `guest ready` sets the platform up with QEMU held before its
// boot (its console exists, empty; exec and login are refused), `guest boot`
// lets it go, exec, console and login reach it, `guest reboot` restarts it in
// the same session, `guest suspend` saves it, `guest boot` resumes it,
// `guest shutdown` ends it cleanly; `guest halt` ends a ready one. Each step
// is checked in `guest list`; a verb given the guest in another state is
// refused with exit 30 naming it. Then the stick gets an owner and a guest
// administrator with the login right only: their stop, eject, exec, halt and
// suspend are refused with exit 32, and they cannot reach the owner's session.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { addStickUser, freshStick, launcher as launch, launcherJson as launchJson, loginArgs, qemuPidsFor } from './harness.ts';

// Boots under TCG on a loaded machine take minutes: the harness's 3-minute default is too short for a suspend or resume.
const SLOW = { timeout: 900_000 };
const launcher = (args: string[], options: Parameters<typeof launch>[1] = {}) => launch(args, { ...SLOW, ...options });
const launcherJson = <T>(args: string[], options: Parameters<typeof launch>[1] = {}) => launchJson<T>(args, { ...SLOW, ...options });

const ALICE = 'power test alice passphrase';
const BOB = 'power test bob passphrase';

describe('guest ready|boot|reboot|suspend|shutdown|halt, console and login on one console guest', function () {
  this.timeout(1_800_000);
  let stick: { root: string; dispose: () => Promise<void> };
  const on = () => ['--stick', stick.root];
  const asAlice = () => [...loginArgs('alice'), ...on()];
  const stateOf = async (name = 'work') =>
    (await launcherJson<Array<{ name: string; state: string }>>(['guest', 'list', ...on()])).json.find((g) => g.name === name)?.state;
  const ok = (done: { exitCode: number; stderr: string }, what: string) => assert.equal(done.exitCode, 0, `${what}: ${done.stderr}`);

  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'alice', ALICE);
    await addStickUser(stick.root, 'bob', BOB);
    for (const args of [
      ['guest', 'create', 'work', '--from', 'default'],
      ['guest', 'install', 'work'],
    ])
      ok(await launcher([...args, ...on()]), args.join(' '));
  });
  after(async () => {
    if (!stick) return;
    await launcher(['stop', '--force', ...on()]);
    await stick.dispose();
  });

  it('ready → boot → exec, console, login → reboot → suspend → boot (resumes) → shutdown', async () => {
    // Refusals before anything runs: boot-only verbs name the state.
    const early = await launcher(['guest', 'shutdown', 'work', ...on()]);
    assert.equal(early.exitCode, 30, early.stderr);
    assert.match(early.stderr, /guest shutdown refuses guest work: it is installed/);

    ok(await launcher(['guest', 'ready', 'work', ...asAlice()], { input: `${ALICE}\n` }), 'ready');
    assert.equal(await stateOf(), 'ready');
    assert.equal((await qemuPidsFor(stick.root)).length, 1, 'QEMU is up while ready');
    // Held before its boot: nothing printed yet, no agent to run a command or a shell through.
    const heldConsole = await launcher(['console', 'work', '--linger', '0', ...on()], { input: '' });
    ok(heldConsole, 'console while ready');
    assert.doesNotMatch(heldConsole.stdout, /POCKETVM_READY/);
    const execReady = await launcher(['exec', '--guest', 'work', ...on(), '--', 'true']);
    assert.equal(execReady.exitCode, 30, execReady.stderr);
    const loginReady = await launcher(['login', 'work', ...on()], { input: 'exit\n' });
    assert.equal(loginReady.exitCode, 30, loginReady.stderr);
    assert.match(loginReady.stderr, /launcher login refuses guest work: it is ready.*boot it first/s);
    const readyAgain = await launcher(['guest', 'ready', 'work', ...on()]);
    assert.equal(readyAgain.exitCode, 30, readyAgain.stderr);

    const boot = await launcherJson<{ state: string; from: string }>(['guest', 'boot', 'work', ...on()]);
    assert.equal(boot.exitCode, 0, boot.stderr);
    assert.deepEqual([boot.json.state, boot.json.from], ['running', 'ready']);
    assert.equal(await stateOf(), 'running');

    const exec = await launcher(['exec', '--guest', 'work', ...on(), '--', 'sh', '-c', 'id -un; echo marker-$((6*7)) > ~/before-suspend']);
    ok(exec, 'exec');
    assert.equal(exec.stdout.trim(), 'alice');
    // The console: its history (the boot, up to the ready marker), then live: a command typed in answers.
    const console = await launcher(['console', 'work', '--linger', '5', ...on()], { input: 'echo console-$((7*6))\n' });
    ok(console, 'console');
    assert.match(console.stdout, /POCKETVM_READY/);
    assert.match(console.stdout, /console-42/);
    const login = await launcher(['login', 'work', ...on()], { input: 'id -un; echo login-$((5*5))\nexit\n' });
    ok(login, 'login');
    assert.match(login.stdout, /alice\s+login-25/);
    const loginOther = await launcher(['login', 'work', '-u', 'bob', ...on()], { input: 'exit\n' });
    assert.equal(loginOther.exitCode, 2, loginOther.stderr);

    const reboot = await launcher(['guest', 'reboot', 'work', ...on()]);
    ok(reboot, 'reboot');
    assert.equal(await stateOf(), 'running');
    const afterReboot = await launcher(['exec', '--guest', 'work', ...on(), '--', 'sh', '-c', 'cat ~/before-suspend; cat /proc/uptime']);
    ok(afterReboot, 'exec after reboot');
    assert.match(afterReboot.stdout, /^marker-42\n/, "alice's disk is back after the reboot");
    const uptime = Number(afterReboot.stdout.split('\n')[1]!.split(' ')[0]);
    assert.ok(uptime < 600, `a new boot (uptime ${uptime} s)`);

    ok(await launcher(['guest', 'suspend', 'work', ...on()]), 'suspend');
    assert.equal(await stateOf(), 'suspended');
    assert.ok(existsSync(join(stick.root, 'users', 'alice', 'state', 'work.vmstate')));
    assert.deepEqual(await qemuPidsFor(stick.root), []);

    const resumed = await launcherJson<{ state: string; from: string; resumed?: unknown }>(['guest', 'boot', 'work', ...asAlice()], { input: `${ALICE}\n` });
    assert.equal(resumed.exitCode, 0, resumed.stderr);
    assert.equal(resumed.json.from, 'suspended');
    assert.ok(resumed.json.resumed, 'resumed, not booted afresh');
    const kept = await launcher(['exec', '--guest', 'work', ...on(), '--', 'sh', '-c', 'cat ~/before-suspend']);
    ok(kept, 'exec after resume');
    assert.equal(kept.stdout.trim(), 'marker-42');

    const shutdown = await launcherJson<{ state: string; step: string }>(['guest', 'shutdown', 'work', ...on()]);
    assert.equal(shutdown.exitCode, 0, shutdown.stderr);
    assert.notEqual(shutdown.json.step, 'kill', 'a clean shutdown');
    assert.equal(await stateOf(), 'installed');
    assert.deepEqual(await qemuPidsFor(stick.root), []);
  });

  it('halt ends a ready guest at once: installed, no QEMU, the stick released', async () => {
    ok(await launcher(['guest', 'ready', 'work', ...asAlice()], { input: `${ALICE}\n` }), 'ready');
    assert.equal(await stateOf(), 'ready');
    ok(await launcher(['guest', 'halt', 'work', ...on()]), 'halt');
    assert.equal(await stateOf(), 'installed');
    assert.deepEqual(await qemuPidsFor(stick.root), []);
    const haltAgain = await launcher(['guest', 'halt', 'work', ...on()]);
    assert.equal(haltAgain.exitCode, 30, haltAgain.stderr);
    assert.match(haltAgain.stderr, /it is installed/);
  });

  it("a guest administrator with the login right only: stop, eject, exec, halt, suspend refused (exit 32); the owner's session is not theirs", async () => {
    ok(await launcher(['guest', 'owner', 'alice', ...asAlice()], { input: `${ALICE}\n` }), 'owner');
    ok(await launcher(['guest', 'grant', 'bob', 'work', 'login', ...asAlice()], { input: `${ALICE}\n` }), 'grant');
    ok(await launcher(['guest', 'ready', 'work', ...asAlice()], { input: `${ALICE}\n` }), 'ready as alice');
    const asBob = [...loginArgs('bob'), ...on()];
    const refused = async (args: string[], what: string) => {
      const done = await launcher([...args, ...asBob], { input: `${BOB}\n` });
      assert.equal(done.exitCode, 32, `${what}: ${done.stderr}`);
      return done.stderr;
    };
    assert.match(await refused(['guest', 'boot', 'work'], 'boot'), /the right "manage" was not granted/);
    assert.match(await refused(['guest', 'halt', 'work'], 'halt'), /the right "manage" was not granted/);
    assert.match(await refused(['stop'], 'stop'), /may not stop work/);
    assert.match(await refused(['eject'], 'eject'), /may not eject work/);
    assert.match(await refused(['eject', '--suspend'], 'eject --suspend'), /the right "suspend" was not granted/);
    assert.match(await refused(['console', 'work'], 'console'), /runs alice's session/);
    // Unsigned, on a stick with an owner: refused before anything is reached.
    const unsigned = await launcher(['exec', '--guest', 'work', ...on(), '--', 'true']);
    assert.equal(unsigned.exitCode, 32, unsigned.stderr);
    ok(await launcher(['guest', 'halt', 'work', ...asAlice()], { input: `${ALICE}\n` }), 'halt as the owner');
    assert.deepEqual(await qemuPidsFor(stick.root), []);
  });
});
