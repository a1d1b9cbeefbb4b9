// A detached session: run --detach, status, exec, the stick lock, stop; and a
// session killed with SIGKILL taking its QEMU with it.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { join } from 'node:path';
import {
  addStickUser,
  freshStick,
  launcher,
  launcherJson,
  launcherPath,
  loginArgs,
  payloadKernelVersion,
  processAlive,
  qemuPidsFor,
  waitUntil,
} from './harness.ts';

// Every launch logs in: one user, its passphrase on stdin.
const passphrase = 'session test passphrase';
const asTester = { input: `${passphrase}\n` };

interface StatusJson {
  guest: string;
  state: string;
  pid: number;
  qemuPid: number;
  accelerator: string;
}

describe('a detached session (boots the real guest)', function () {
  this.timeout(300_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'tester', passphrase);
  });
  after(async () => {
    await launcher(['stop', '--force', '--stick', stick.root]);
    await stick.dispose();
  });

  describe('run --detach, exec, status, stop', () => {
    let started: { exitCode: number; json: StatusJson; stderr: string };
    before(async () => {
      started = await launcherJson<StatusJson>(['run', '--detach', '--stick', stick.root, ...loginArgs('tester')], asTester);
    });

    it('returns once the guest is ready, leaving the session in the background', async () => {
      assert.equal(started.exitCode, 0, `${JSON.stringify(started.json)}\n${await readFile(join(stick.root, 'run', 'session.log'), 'utf8').catch(() => '')}`);
      assert.equal(started.json.state, 'ready');
      assert.ok(processAlive(started.json.pid));
      assert.ok(processAlive(started.json.qemuPid));
    });

    it('exec prints the payload kernel version for uname -r', async () => {
      const result = await launcher(['exec', '--stick', stick.root, '--', 'uname', '-r']);
      assert.equal(result.exitCode, 0, result.stderr);
      assert.equal(result.stdout.trim(), await payloadKernelVersion());
    });

    it("exec exits with the guest command's exit code and passes stderr through", async () => {
      const result = await launcher(['exec', '--stick', stick.root, '--', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
      assert.equal(result.exitCode, 3);
      assert.equal(result.stdout, 'out\n');
      assert.equal(result.stderr, 'err\n');
      // Everything after -- belongs to the guest command, --json included.
      const json = await launcher(['exec', '--json', '--stick', stick.root, '--', 'sh', '-c', 'cat /proc/sys/kernel/hostname; exit 4']);
      assert.equal(json.exitCode, 4);
      assert.deepEqual(JSON.parse(json.stdout), { exitCode: 4, signal: null, stdout: 'pocketvm\n', stderr: '' });
    });

    it('exec of a command the guest does not have fails with one clear line', async () => {
      const result = await launcher(['exec', '--stick', stick.root, '--', 'no-such-command']);
      assert.notEqual(result.exitCode, 0);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    });

    it('exec output through a pipe is whole (over 10 MiB, byte for byte); `| head -1` ends it quietly', async () => {
      // seq 1 1450000 prints 10,488,896 bytes.
      let expected = '';
      for (let i = 1; i <= 1_450_000; i++) expected += `${i}\n`;
      const script = '"$0" exec --stick "$1" -- seq 1 1450000 2>"$2" | cat; echo "${PIPESTATUS[0]}" >"$3"';
      const errFile = join(stick.root, '..', 'exec-stderr');
      const statusFile = join(stick.root, '..', 'exec-status');
      const whole = await execa('bash', ['-c', script, launcherPath, stick.root, errFile, statusFile], {
        encoding: 'buffer',
        maxBuffer: 64 * 1024 * 1024,
        timeout: 240_000,
        stripFinalNewline: false,
      });
      assert.equal((await readFile(statusFile, 'utf8')).trim(), '0', await readFile(errFile, 'utf8'));
      assert.equal(Buffer.from(whole.stdout).length, expected.length);
      assert.ok(Buffer.from(whole.stdout).equals(Buffer.from(expected)), 'the output differs');
      const early = await execa('bash', ['-c', script.replace('| cat', '| head -1'), launcherPath, stick.root, errFile, statusFile], { timeout: 240_000 });
      assert.equal(early.stdout, '1');
      assert.equal((await readFile(statusFile, 'utf8')).trim(), '0');
      assert.equal(await readFile(errFile, 'utf8'), '');
    });

    it('status reports the running session', async () => {
      const status = await launcherJson<StatusJson>(['status', '--stick', stick.root]);
      assert.equal(status.exitCode, 0, status.stderr);
      assert.equal(status.json.state, 'ready');
      assert.equal(status.json.qemuPid, started.json.qemuPid);
    });

    it('a second launcher on the locked stick is refused with exit 5, naming the holder', async () => {
      const second = await launcher(['run', '--detach', '--stick', stick.root]);
      assert.equal(second.exitCode, 5, second.stderr);
      assert.match(second.stderr, new RegExp(`in use by launcher run --detach \\(pid ${started.json.pid} `));
      assert.equal(
        second.stderr
          .trim()
          .split('\n')
          .filter((l) => l.includes('error')).length,
        1,
      );
      assert.ok(processAlive(started.json.qemuPid), 'the running guest is untouched');
    });

    it('stop shuts the guest down, says which step ended it, and releases the stick', async () => {
      const stopped = await launcherJson<{ step: string }>(['stop', '--stick', stick.root]);
      assert.equal(stopped.exitCode, 0, stopped.stderr);
      assert.ok(['agent', 'acpi'].includes(stopped.json.step), JSON.stringify(stopped.json));
      assert.ok(await waitUntil(() => !processAlive(started.json.qemuPid) && !processAlive(started.json.pid), 10_000));
      const status = await launcher(['status', '--stick', stick.root]);
      assert.equal(status.exitCode, 8);
      assert.match(status.stderr, /no guest is running/);
      const exec = await launcher(['exec', '--stick', stick.root, '--', 'true']);
      assert.equal(exec.exitCode, 8);
    });

    it('kept the console log on the stick', async () => {
      const log = await readFile(join(stick.root, 'run', 'default.console.log'), 'utf8');
      assert.match(log, /POCKETVM_READY/);
    });
  });

  describe('kill -9 of the session process', () => {
    it('takes QEMU down within a few seconds and leaves a lock the next launcher can take over', async () => {
      const started = await launcherJson<StatusJson>(['run', '--detach', '--stick', stick.root, ...loginArgs('tester')], asTester);
      assert.equal(started.exitCode, 0, `${JSON.stringify(started.json)}\n${await readFile(join(stick.root, 'run', 'session.log'), 'utf8').catch(() => '')}`);
      assert.ok(processAlive(started.json.qemuPid));
      process.kill(started.json.pid, 'SIGKILL');
      const gone = await waitUntil(() => !processAlive(started.json.qemuPid), 5_000);
      assert.ok(gone, `QEMU ${started.json.qemuPid} outlived its session by more than 5 s`);
      assert.deepEqual(await qemuPidsFor(stick.root), []);
      const status = await launcher(['status', '--stick', stick.root]);
      assert.equal(status.exitCode, 8, status.stderr);
    });

    it("the next launcher removes the dead session's private control directory from the host", async () => {
      const lock = JSON.parse(await readFile(join(stick.root, 'run', 'lock.json'), 'utf8')) as { control: { privateDir: string } };
      assert.ok(existsSync(lock.control.privateDir), 'a SIGKILLed session cannot clean up after itself');
      const next = await launcher(['run', '--detach', '--stick', stick.root, ...loginArgs('tester')], asTester);
      assert.equal(next.exitCode, 0, `${next.stderr}\n${(await execa('ps', ['-eo', 'pid,ppid,stat,args'])).stdout}`);
      assert.equal(existsSync(lock.control.privateDir), false);
      const current = JSON.parse(await readFile(join(stick.root, 'run', 'lock.json'), 'utf8')) as { control: { privateDir: string } };
      const stopped = await launcher(['stop', '--stick', stick.root]);
      assert.equal(stopped.exitCode, 0, stopped.stderr);
      assert.equal(existsSync(current.control.privateDir), false, 'a clean stop removes its own');
    });
  });
});
