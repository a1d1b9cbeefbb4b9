// Suspend to the stick and resume on "another PC", through the real launcher.
//
// One cold boot: a counter runs in the guest (a busybox loop writing to tmpfs
// every 100 ms) and a file is written to the encrypted home; `eject --suspend`
// saves it. Then, without booting: a truncated state, a state sealed under
// another key and a state with one flipped byte in the middle are each
// refused in one line and kept (the last one by QEMU's load, the others before
// QEMU starts). Then a second launcher process in its own UTS namespace (so
// another hostname, hence another host fingerprint) resumes it: the counter
// goes on from where it was, the file is there, the clock is right, the state
// file is gone. A second suspend, `run --cold-boot` (the one other boot: the
// state is set aside and the home disk is intact), and `eject`. Last, a
// boot that writes the disk and suspends: the set-aside state put back is
// refused as stale (src/session/disk-generation.ts).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { execa } from 'execa';
import { deriveStateKey } from '../../src/auth/state-key.ts';
import { readStateHead, StateSealer } from '../../src/vmm/state-cipher.ts';
import { addStickUser, freshStick, launcher, launcherJson, launcherPath, loginArgs, qemuPidsFor } from './harness.ts';

const USER = 'alice';
const PASSPHRASE = 'suspend passphrase';
const MARKER = `pocketvm-in-memory-${randomBytes(6).toString('hex')}`;
const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; usleep 100000; done';

interface SuspendJson {
  action: string;
  safeToRemove: boolean;
  suspend: { file: string; bytes: number; memoryMiB: number; saveMs: number; totalMs: number };
}

/** `launcher run --detach` in a new UTS namespace with another hostname: another PC to the fingerprint. */
async function runOnOtherPc(stick: string, extra: string[] = []) {
  const asRoot = process.getuid?.() === 0;
  const result = await execa(
    'unshare',
    [
      ...(asRoot ? [] : ['-r']),
      '-u',
      'sh',
      '-c',
      'hostname other-pc && exec "$@"',
      'other-pc',
      launcherPath,
      'run',
      '--detach',
      '--stick',
      stick,
      ...loginArgs(USER),
      ...extra,
    ],
    {
      reject: false,
      input: `${PASSPHRASE}\n`,
      env: { NO_COLOR: '1' },
      timeout: 180_000,
    },
  );
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

async function guest(stick: string, script: string): Promise<string> {
  const result = await launcher(['exec', '--stick', stick, '--', 'sh', '-c', script]);
  assert.equal(result.exitCode, 0, `exec ${script}: ${result.stderr}`);
  return result.stdout.trim();
}

describe('suspend to the stick and resume on another PC', function () {
  this.timeout(600_000);
  let stick: { root: string; dispose: () => Promise<void> };
  let stateFile: string;
  let good: string;
  let counterAtSuspend: number;
  let suspendedAt: number;

  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, USER, PASSPHRASE);
    stateFile = join(stick.root, 'users', USER, 'state', 'default.vmstate');
    good = join(stick.root, '..', 'good.vmstate');
  });
  after(async () => {
    await launcher(['stop', '--force', '--stick', stick.root]);
    await stick.dispose();
  });

  const run = (extra: string[] = []) =>
    launcher(['run', '--detach', '--stick', stick.root, ...loginArgs(USER), '--accel', 'tcg', ...extra], { input: `${PASSPHRASE}\n` });

  it('eject --suspend saves the running guest, encrypted, and leaves nothing running', async () => {
    const started = await run();
    assert.equal(started.exitCode, 0, started.stderr);
    await guest(stick.root, `echo kept-on-disk > ~/notes.txt && sync && echo ${MARKER} > /tmp/marker && (${COUNTER}) >/dev/null 2>&1 &`);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const before = Number(await guest(stick.root, 'cat /tmp/counter'));
    assert.ok(before > 3, `the counter runs (${before})`);

    const ejected = await launcherJson<SuspendJson>(['eject', '--suspend', '--stick', stick.root]);
    assert.equal(ejected.exitCode, 0, ejected.stderr);
    assert.equal(ejected.json.action, 'suspend');
    assert.equal(ejected.json.safeToRemove, true);
    assert.equal(ejected.json.suspend.file, stateFile);
    assert.equal((await stat(stateFile)).size, ejected.json.suspend.bytes);
    counterAtSuspend = before;
    suspendedAt = Date.now();

    assert.deepEqual(await qemuPidsFor(stick.root), [], 'QEMU is gone');
    assert.equal(existsSync(join(stick.root, 'run', 'lock.json')), false, 'the stick is released');
    assert.equal(existsSync(`${stateFile}.partial`), false);
    const bytes = await readFile(stateFile);
    assert.equal(bytes.subarray(0, 8).toString('latin1'), 'PVMSTATE');
    assert.equal(bytes.indexOf(MARKER), -1, 'guest memory is not readable in the file');
    assert.equal(bytes.indexOf('kept-on-disk'), -1);
    await copyFile(stateFile, good);
    const status = await launcher(['status', '--stick', stick.root]);
    assert.equal(status.exitCode, 8);

    const human = await launcher(['eject', '--stick', stick.root]);
    assert.equal(human.exitCode, 0);
    assert.match(human.stdout, /nothing is running from this stick: it is safe to remove/);
  });

  async function refusedAndKept(expect: RegExp, extra: string[] = []) {
    const before = await readFile(stateFile);
    const result = await launcherJson<{ error: { code: number; reason: string; message: string; kept: boolean } }>(
      ['run', '--detach', '--stick', stick.root, ...loginArgs(USER), ...extra],
      { input: `${PASSPHRASE}\n` },
    );
    assert.equal(result.exitCode, 17, JSON.stringify(result.json));
    assert.equal(result.json.error.code, 17);
    assert.match(result.json.error.message, expect);
    assert.equal(result.json.error.kept, true);
    assert.deepEqual(await readFile(stateFile), before, 'the state file is kept, unchanged');
    assert.deepEqual(await qemuPidsFor(stick.root), []);
    assert.equal(existsSync(join(stick.root, 'run', 'lock.json')), false);
    return result.json.error;
  }

  it('refuses a truncated state before starting QEMU, and keeps it (also with --keep-state)', async () => {
    const bytes = await readFile(good);
    await writeFile(stateFile, bytes.subarray(0, bytes.length - 4096));
    const error = await refusedAndKept(/cannot be resumed on this PC: it is truncated/);
    assert.equal(error.reason, 'truncated');
    const human = await launcher(['run', '--detach', '--stick', stick.root, ...loginArgs(USER)], { input: `${PASSPHRASE}\n` });
    assert.equal(human.exitCode, 17);
    const errorLines = human.stderr.split('\n').filter((line) => line.includes('error:'));
    assert.equal(errorLines.length, 1, human.stderr);
    assert.match(errorLines[0]!, /--cold-boot/);
    const kept = await refusedAndKept(/kept for another PC/, ['--keep-state']);
    assert.equal(kept.reason, 'kept');
  });

  it('refuses a state sealed under another key', async () => {
    const handle = await open(good, 'r');
    const { header } = await readStateHead<Record<string, unknown>>(handle);
    await handle.close();
    const { cipher: _cipher, ...meta } = header;
    const forged = await buffer(Readable.from([randomBytes(4 << 20)]).pipe(new StateSealer(deriveStateKey(randomBytes(32)), meta)));
    await writeFile(stateFile, forged);
    const error = await refusedAndKept(/does not open with this key/);
    assert.equal(error.reason, 'key');
  });

  it('refuses a state with one flipped byte while loading it, and keeps it', async () => {
    const bytes = Buffer.from(await readFile(good));
    const at = Math.floor(bytes.length / 2);
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0x40, at);
    await writeFile(stateFile, bytes);
    const error = await refusedAndKept(/could not be resumed: it is damaged: chunk \d+ does not verify; the saved state was kept/);
    assert.equal(error.reason, 'damaged');
  });

  it('resumes in another launcher on another PC: the counter goes on, the files are there', async () => {
    await copyFile(good, stateFile);
    const resumed = await runOnOtherPc(stick.root);
    assert.equal(resumed.exitCode, 0, resumed.stderr);
    assert.match(resumed.stderr, /suspended .* on another PC: resuming it/);
    assert.match(resumed.stderr, /its clock moved \d+ s forward/);
    const lock = JSON.parse(await readFile(join(stick.root, 'run', 'lock.json'), 'utf8')) as { hostname: string };
    assert.equal(lock.hostname, 'other-pc');
    assert.equal(existsSync(stateFile), false, 'the state file is deleted once the guest runs');

    const first = Number(await guest(stick.root, 'cat /tmp/counter'));
    assert.ok(first >= counterAtSuspend, `no reset: ${first} after ${counterAtSuspend} at suspend`);
    // Running on, it would have counted ten a second since the suspend (the
    // refusal tests in between take minutes); the suspend itself may take a
    // while on a loaded machine, so the bound is half of that, not a fixed time.
    const ranOn = (Date.now() - suspendedAt) / 100;
    assert.ok(
      first - counterAtSuspend < ranOn / 2,
      `it was paused while saved, not running on: ${first} vs ${counterAtSuspend} (${Math.round(ranOn)} if it had run on)`,
    );
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const later = Number(await guest(stick.root, 'cat /tmp/counter'));
    assert.ok(later > first, `it keeps counting: ${first} → ${later}`);
    assert.equal(await guest(stick.root, 'cat /tmp/marker'), MARKER);
    assert.equal(await guest(stick.root, 'cat ~/notes.txt'), 'kept-on-disk');
    const guestSeconds = Number(await guest(stick.root, 'date +%s'));
    assert.ok(Math.abs(guestSeconds - Date.now() / 1000) < 5, `the guest clock was corrected (${guestSeconds} vs ${Math.round(Date.now() / 1000)})`);
    // The resumed disk is fully usable: write, sync, read back.
    assert.equal(await guest(stick.root, 'echo after-resume >> ~/notes.txt && sync && tail -n1 ~/notes.txt'), 'after-resume');
    // /host was mounted afresh against this launcher's 9P server.
    assert.equal(await guest(stick.root, 'grep -c " /host 9p " /proc/mounts; ls /host >/dev/null && echo listed'), '1\nlisted');
  });

  it('suspends again, then run --cold-boot sets the state aside and boots afresh with the disk intact', async () => {
    const ejected = await launcher(['eject', '--suspend', '--stick', stick.root]);
    assert.equal(ejected.exitCode, 0, ejected.stderr);
    assert.match(ejected.stdout, /suspended to users\/alice\/state\/default\.vmstate: \d+ MiB, encrypted/);
    assert.match(ejected.stdout, /safe to remove the stick/);
    const cold = await run(['--cold-boot']);
    assert.equal(cold.exitCode, 0, cold.stderr);
    assert.match(cold.stderr, /set aside as .*default\.vmstate\.set-aside-/);
    assert.equal(existsSync(stateFile), false);
    const aside = (await readdir(join(stick.root, 'users', USER, 'state'))).filter((name) => name.startsWith('default.vmstate.set-aside-'));
    assert.equal(aside.length, 1);
    assert.equal(await guest(stick.root, 'test -e /tmp/counter && echo running || echo fresh'), 'fresh');
    assert.equal(await guest(stick.root, 'cat ~/notes.txt'), 'kept-on-disk\nafter-resume');
    const ejected2 = await launcher(['eject', '--stick', stick.root]);
    assert.equal(ejected2.exitCode, 0, ejected2.stderr);
    assert.match(ejected2.stdout, /shut down in .*\nsafe to remove the stick/);
    assert.deepEqual(await qemuPidsFor(stick.root), []);
  });

  it('refuses the set-aside state, put back after the disk was written since: stale, never resumed', async () => {
    const [aside] = (await readdir(join(stick.root, 'users', USER, 'state'))).filter((name) => name.startsWith('default.vmstate.set-aside-'));
    // Boot, write, suspend: a newer disk and a newer state.
    const started = await run();
    assert.equal(started.exitCode, 0, started.stderr);
    await guest(stick.root, 'echo newer-than-the-old-state >> ~/notes.txt && sync');
    const ejected = await launcher(['eject', '--suspend', '--stick', stick.root]);
    assert.equal(ejected.exitCode, 0, ejected.stderr);
    // The old state goes back in the newer one's place.
    await copyFile(join(stick.root, 'users', USER, 'state', aside!), stateFile);
    const error = await refusedAndKept(/cannot be resumed on this PC: it was saved in run \d+ of the personal disk, which has been written since/);
    assert.equal(error.reason, 'stale');
    // The original state from the first boot, older still: refused the same way.
    await copyFile(good, stateFile);
    assert.equal((await refusedAndKept(/written since/)).reason, 'stale');
  });
});
