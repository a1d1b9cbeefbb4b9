// --remember-on-this-host and `launcher forget` against a real Secret Service
// (gnome-keyring-daemon inside a private dbus-run-session, with a throw-away
// HOME), and the same commands on a host without one. Nothing boots: the
// stick's kernel is garbage (with a matching checksum), so each launch logs in
// and then fails in QEMU (exit 6), which is all the keychain needs.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { addStickUser, freshStick, launcher, launcherPath } from './harness.ts';

const hasSecretService = (await execa('sh', ['-c', 'command -v dbus-run-session && command -v gnome-keyring-daemon'], { reject: false })).exitCode === 0;

describe('host keychain (--remember-on-this-host, forget)', function () {
  this.timeout(120_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let home: string;
  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'alice', 'alice keychain passphrase');
    const payload = join(stick.root, 'payload', 'default');
    const garbage = Buffer.alloc(4096, 0x41);
    await writeFile(join(payload, 'vmlinuz'), garbage);
    const sums = (await readFile(join(payload, 'SHA256SUMS'), 'utf8')).replace(
      /^[0-9a-f]{64}(?=\s+\*?vmlinuz$)/m,
      createHash('sha256').update(garbage).digest('hex'),
    );
    await writeFile(join(payload, 'SHA256SUMS'), sums);
    home = await mkdtemp(join(tmpdir(), 'pocketvm-keychain-home-'));
  });
  after(async () => {
    await stick.dispose();
    await rm(home, { recursive: true, force: true });
  });

  it('without a keychain service: one line, and nothing changes', async () => {
    const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: home, NO_COLOR: '1' };
    const run = await launcher(
      ['run', '--detach', '--accel', 'tcg', '--stick', stick.root, '--user', 'alice', '--passphrase-stdin', '--remember-on-this-host'],
      { input: 'alice keychain passphrase\n', env, extendEnv: false },
    );
    assert.equal(run.exitCode, 6, run.stderr);
    assert.match(run.stderr, /logged in as alice/);
    assert.equal(run.stderr.split('\n').filter((l) => /no keychain service on this host/.test(l)).length, 1, run.stderr);
    assert.match(run.stderr, /the passphrase was not remembered/);
    const forget = await launcher(['forget', '--stick', stick.root], { env, extendEnv: false });
    assert.equal(forget.exitCode, 0, forget.stderr);
    assert.match(forget.stdout, /^no keychain service on this host .*; nothing changed\n$/);
  });

  (hasSecretService ? it : it.skip)('with a Secret Service: remembered, used for the next login, forgotten', async () => {
    const script = [
      'echo -n pocketvm | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1',
      'L="$1"; S="$2"',
      'echo "alice keychain passphrase" | "$L" run --detach --accel tcg --stick "$S" --user alice --passphrase-stdin --remember-on-this-host; echo "exit=$?"',
      '"$L" run --detach --accel tcg --stick "$S" --user alice </dev/null; echo "exit=$?"',
      '"$L" forget --stick "$S" --user alice; echo "exit=$?"',
      '"$L" run --detach --accel tcg --stick "$S" --user alice </dev/null; echo "exit=$?"',
    ].join('\n');
    const result = await execa('dbus-run-session', ['--', 'sh', '-c', script, 'sh', launcherPath, stick.root], {
      reject: false,
      all: true,
      env: { HOME: home, NO_COLOR: '1', XDG_RUNTIME_DIR: home },
      timeout: 100_000,
    });
    const out = String(result.all);
    const steps = out.split(/^exit=\d+$/m).slice(0, 4);
    const exits = [...out.matchAll(/^exit=(\d+)$/gm)].map((m) => Number(m[1]));
    assert.deepEqual(exits, [6, 6, 0, 2], out);
    assert.match(steps[0] ?? '', /the passphrase for alice is remembered on this host/);
    assert.match(steps[1] ?? '', /logged in as alice with the passphrase remembered on this host/);
    assert.match(steps[2] ?? '', /forgot the passphrase of alice on this host/);
    assert.match(steps[3] ?? '', /no passphrase: there is no terminal to ask at/);
  });
});
