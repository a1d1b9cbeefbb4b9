// Users, login and the encrypted personal disk on the real guest: the marker
// a guest writes in its home is nowhere on the stick in plaintext, no key
// reaches a command line or an environment, data survives a passphrase
// change and a reboot, a disk made with another key is refused, and every
// bad login is refused before QEMU starts. Three boots (and one refused).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { login } from '../../src/auth/users.ts';
import { stickLayout } from '../../src/stick/layout.ts';
import { addStickUser, freshStick, launcher, launcherJson, loginArgs, qemuPidsFor } from './harness.ts';

interface StatusJson {
  pid: number;
  qemuPid: number;
  state: string;
  user: string | null;
}

const MARKER = `pocketvm-at-rest-marker-${Date.now()}`;
const first = 'alice first passphrase';
const second = 'alice second passphrase';

async function stickFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) files.push(join(entry.parentPath, entry.name));
  }
  return files;
}

const sha256 = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

describe('users and the encrypted personal disk (boots the real guest)', function () {
  this.timeout(300_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let disk: string;
  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'alice', first);
    disk = join(stick.root, 'users', 'alice', 'disks', 'default.qcow2');
  });
  after(async () => {
    await launcher(['stop', '--force', '--stick', stick.root]);
    await stick.dispose();
  });

  describe('a first session as alice', () => {
    let started: { exitCode: number; json: StatusJson; stderr: string };
    before(async () => {
      started = await launcherJson<StatusJson>(['run', '--detach', '--accel', 'tcg', '--stick', stick.root, ...loginArgs('alice')], { input: `${first}\n` });
    });

    it('logs in, creates the disk, and the guest runs exec as alice with HOME on the mounted disk', async () => {
      assert.equal(started.exitCode, 0, started.stderr || JSON.stringify(started.json));
      assert.equal(started.json.user, 'alice');
      assert.ok(existsSync(disk));
      const result = await launcher(['exec', '--stick', stick.root, '--', 'sh', '-c', 'id -un; id -u; echo "$HOME"; pwd; grep " /home/alice " /proc/mounts']);
      assert.equal(result.exitCode, 0, result.stderr);
      const [name, uid, home, cwd, mount] = result.stdout.trim().split('\n');
      assert.deepEqual([name, uid, home, cwd], ['alice', '1000', '/home/alice', '/home/alice']);
      assert.match(mount ?? '', /^\/dev\/vd[a-z] \/home\/alice ext4 /);
      const root = await launcher(['exec', '--root', '--stick', stick.root, '--', 'id', '-u']);
      assert.equal(root.stdout.trim(), '0');
    });

    it('writes a marker to the home disk', async () => {
      const result = await launcher(['exec', '--stick', stick.root, '--', 'sh', '-c', `echo ${MARKER} > "$HOME/marker" && sync && cat "$HOME/marker"`]);
      assert.equal(result.exitCode, 0, result.stderr);
      assert.equal(result.stdout.trim(), MARKER);
    });

    it("no key material in QEMU's or the session's /proc/<pid>/cmdline and environment", async () => {
      const key = (await login(stickLayout(stick.root), 'alice', first)).diskKey;
      const needles = [key.toString('hex'), key.toString('base64'), first, Buffer.from(key.toString('hex')).toString('base64')];
      for (const pid of [started.json.qemuPid, started.json.pid]) {
        for (const what of ['cmdline', 'environ']) {
          const text = (await readFile(`/proc/${pid}/${what}`)).toString('latin1');
          for (const needle of needles) assert.ok(!text.includes(needle), `/proc/${pid}/${what} holds key material`);
          assert.ok(!key.length || text.indexOf(key.toString('latin1')) < 0);
        }
      }
    });

    it('stops; at rest no file on the stick holds the marker, and qemu-img reports encryption', async () => {
      const stopped = await launcher(['stop', '--stick', stick.root]);
      assert.equal(stopped.exitCode, 0, stopped.stderr);
      const files = await stickFiles(stick.root);
      assert.ok(files.includes(disk));
      for (const file of files) assert.equal((await readFile(file)).indexOf(MARKER), -1, `${file} holds the marker in plaintext`);
      const info = JSON.parse((await execa('qemu-img', ['info', '--output=json', disk])).stdout) as {
        format: string;
        encrypted?: boolean;
        'format-specific'?: { data?: { encrypt?: { format?: string } } };
      };
      assert.equal(info.format, 'qcow2');
      assert.equal(info.encrypted, true);
      assert.equal(info['format-specific']?.data?.encrypt?.format, 'luks');
    });
  });

  describe('a passphrase change, then a reboot', () => {
    it('passwd re-wraps the key without rewriting the disk; the old passphrase is refused (exit 11) before QEMU starts', async () => {
      const before = await sha256(disk);
      const changed = await launcher(['user', 'passwd', 'alice', '--passphrase-stdin', '--stick', stick.root], { input: `${first}\n${second}\n` });
      assert.equal(changed.exitCode, 0, changed.stderr);
      assert.equal(await sha256(disk), before);
      const old = await launcher(['run', '--detach', '--accel', 'tcg', '--stick', stick.root, ...loginArgs('alice')], { input: `${first}\n` });
      assert.equal(old.exitCode, 11, old.stderr);
      assert.match(old.stderr, /wrong passphrase for alice \(1 failed attempt in a row\); you may try again now/);
      assert.deepEqual(await qemuPidsFor(stick.root), []);
    });

    it('the new passphrase opens the same disk, and the marker is still there', async () => {
      const started = await launcherJson<StatusJson>(['run', '--detach', '--accel', 'tcg', '--stick', stick.root, ...loginArgs('alice')], {
        input: `${second}\n`,
      });
      assert.equal(started.exitCode, 0, started.stderr || JSON.stringify(started.json));
      const result = await launcher(['exec', '--stick', stick.root, '--', 'cat', '/home/alice/marker']);
      assert.equal(result.stdout.trim(), MARKER, result.stderr);
      assert.equal((await launcher(['stop', '--stick', stick.root])).exitCode, 0);
    });
  });

  describe("another user's disk", () => {
    it("bob cannot open alice's disk: exit 11, the disk key does not match, no QEMU and no lock left", async () => {
      await addStickUser(stick.root, 'bob', 'bob passphrase');
      const bobDisk = join(stick.root, 'users', 'bob', 'disks', 'default.qcow2');
      await copyFile(disk, bobDisk);
      const before = await sha256(bobDisk);
      const result = await launcherJson<{ error: { code: number; kind: string; message: string; reason: string } }>(
        ['run', '--detach', '--accel', 'tcg', '--stick', stick.root, ...loginArgs('bob')],
        { input: 'bob passphrase\n' },
      );
      assert.equal(result.exitCode, 11, result.stderr);
      assert.equal(result.json.error.kind, 'auth');
      assert.equal(result.json.error.reason, 'disk-key-mismatch');
      assert.match(result.json.error.message, /the disk key does not match .*bob\/disks\/default\.qcow2/);
      assert.equal(await sha256(bobDisk), before);
      assert.deepEqual(await qemuPidsFor(stick.root), []);
      await assert.rejects(readFile(join(stick.root, 'run', 'lock.json')), /ENOENT/);
    });
  });

  describe('bad input at login (nothing boots)', () => {
    const run = (name: string, input?: string, extra: string[] = []) =>
      launcher(
        ['run', '--detach', '--accel', 'tcg', '--stick', stick.root, '--user', name, ...extra, ...(input === undefined ? [] : ['--passphrase-stdin'])],
        input === undefined ? {} : { input },
      );

    it('wrong passphrases back off progressively, and the back-off survives a restart (each launcher is a new process)', async () => {
      await addStickUser(stick.root, 'carol', 'carol passphrase');
      assert.match((await run('carol', 'nope nope 1\n')).stderr, /1 failed attempt in a row\); you may try again now/);
      assert.match((await run('carol', 'nope nope 2\n')).stderr, /2 failed attempts in a row\); you may try again now/);
      const third = await run('carol', 'nope nope 3\n');
      assert.equal(third.exitCode, 11);
      assert.match(third.stderr, /3 failed attempts in a row\); the next attempt is allowed in 2 s/);
      // A new launcher inside the 2 s window is refused before the passphrase is
      // checked; on a loaded machine its start alone can outlast the window, and
      // then the wrong passphrase it carries must count as the 4th failure in a
      // row: either way the back-off state came through the restart.
      const thirdEnded = Date.now();
      const fourth = await launcherJson<{ error: { code: number; reason: string; waitSeconds: number; message: string } }>(
        ['run', '--detach', '--stick', stick.root, ...loginArgs('carol')],
        { input: 'nope nope 4\n' },
      );
      const took = Date.now() - thirdEnded;
      assert.equal(fourth.exitCode, 11);
      if (fourth.json.error.reason === 'backoff') {
        assert.ok(fourth.json.error.waitSeconds >= 1 && fourth.json.error.waitSeconds <= 2, JSON.stringify(fourth.json));
      } else {
        assert.ok(
          took > 2_000,
          `the 4th attempt was checked ${took} ms after the 3rd failed, inside its 2 s back-off, yet not refused: ${JSON.stringify(fourth.json)}`,
        );
        assert.match(fourth.json.error.message, /4 failed attempts in a row\); the next attempt is allowed in 4 s/);
      }
      assert.deepEqual(await qemuPidsFor(stick.root), []);
    });

    it('unknown user, empty passphrase, no passphrase without a terminal', async () => {
      const unknown = await run('nobody', 'whatever passphrase\n');
      assert.equal(unknown.exitCode, 11);
      assert.match(unknown.stderr, /there is no user "nobody" on this stick/);
      const empty = await run('alice', '\n');
      assert.equal(empty.exitCode, 2);
      assert.match(empty.stderr, /the passphrase is empty \(a passphrase has 8 to 1024 characters/);
      const none = await run('alice');
      assert.equal(none.exitCode, 2);
      assert.match(none.stderr, /no passphrase: there is no terminal to ask at \(pass it on stdin with --passphrase-stdin\)/);
      const several = await launcher(['run', '--detach', '--stick', stick.root, '--passphrase-stdin'], { input: 'x\n' });
      assert.equal(several.exitCode, 2);
      assert.match(several.stderr, /several users \(alice, bob, carol\)/);
    });

    it('user add: too-short passphrase and bad names are refused with the policy in one line', async () => {
      const short = await launcher(['user', 'add', 'dave', '--passphrase-stdin', '--stick', stick.root], { input: 'short\n' });
      assert.equal(short.exitCode, 2);
      assert.equal(
        short.stderr
          .trim()
          .split('\n')
          .filter((l) => l.includes('error')).length,
        1,
      );
      assert.match(short.stderr, /the passphrase is too short \(a passphrase has 8 to 1024 characters, and no line breaks\)/);
      assert.ok(!existsSync(join(stick.root, 'users', 'dave')));
      assert.equal((await launcher(['user', 'add', 'Dave!', '--passphrase-stdin', '--stick', stick.root], { input: 'long enough\n' })).exitCode, 2);
    });

    it('a hand-edited user.json is reported (exit 11) and left as it is', async () => {
      const path = join(stick.root, 'users', 'bob', 'user.json');
      const edited = (await readFile(path, 'utf8')).replace(/"memoryCost": \d+/, '"memoryCost": 19456');
      await writeFile(path, edited);
      const result = await run('bob', 'bob passphrase\n');
      assert.equal(result.exitCode, 11, result.stderr);
      assert.match(result.stderr, /user\.json is corrupt: its checksum does not match its content/);
      assert.equal(await readFile(path, 'utf8'), edited);
      const list = await launcher(['user', 'list', '--stick', stick.root]);
      assert.match(list.stdout, /bob\s+PROBLEM: .*checksum/);
    });

    it('user remove says the disk becomes unrecoverable; without --yes and a terminal it removes nothing', async () => {
      const refused = await launcher(['user', 'remove', 'bob', '--stick', stick.root]);
      assert.equal(refused.exitCode, 2);
      assert.match(refused.stderr, /destroys their wrapped disk key: their personal disks .* become unrecoverable.*nothing was removed/);
      assert.ok(existsSync(join(stick.root, 'users', 'bob', 'user.json')));
      const removed = await launcher(['user', 'remove', 'bob', '--yes', '--stick', stick.root]);
      assert.equal(removed.exitCode, 0, removed.stderr);
      assert.match(removed.stderr, /become unrecoverable/);
      assert.ok(!existsSync(join(stick.root, 'users', 'bob')));
      assert.equal((await run('bob', 'bob passphrase\n')).exitCode, 11);
    });

    it('a stick with no users says how to create one', async () => {
      const empty = await freshStick();
      try {
        const result = await launcher(['run', '--detach', '--stick', empty.root]);
        assert.equal(result.exitCode, 11, result.stderr);
        assert.match(result.stderr, /there are no users on this stick yet \(create one with: launcher user add NAME\)/);
      } finally {
        await empty.dispose();
      }
    });
  });
});
