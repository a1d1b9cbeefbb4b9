// The guest cannot widen its own view of the host (boots the real guest
// three times). As the ordinary guest user it writes two table rules into
// its registry: one for the host's whole file system (/) and one for a
// folder outside the home (a marker folder under /tmp). After a relaunch
// neither applies: nothing outside the shared folders is readable, and a
// confirmation forged or copied into tables-confirmed.json without the
// passphrase is refused with one line. Confirmed at the launcher with the
// passphrase, the folder appears, and even the confirmed rule for / serves
// no /proc (/proc/1/environ, /proc/self/mem stay unreachable).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ruleFingerprint } from '../../src/dyntable/registry-rules.ts';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { addStickUser, freshStick, launcher, launcherJson, loginArgs } from './harness.ts';

const USER = 'tara';
const PASSPHRASE = 'tara tables passphrase';
const OTHER = 'mallory';
const OTHER_PASSPHRASE = 'mallory own passphrase';
const MARKER = 'HOST-MARKER-outside-every-shared-folder';

describe('the guest cannot widen the table (boots the real guest)', function () {
  this.timeout(900_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let home: string;
  let markerDir: string;
  let env: Record<string, string>;
  let confirmations: string;

  const guest = async (script: string) => {
    const result = await launcher(['exec', '--stick', stick.root, '--', 'sh', '-c', script], { env });
    return { code: result.exitCode, out: result.stdout, err: result.stderr };
  };
  const ok = async (script: string) => {
    const result = await guest(script);
    assert.equal(result.code, 0, `guest: ${script}\n${result.out}\n${result.err}`);
    return result.out;
  };
  const boot = async () => {
    const started = await launcher(['run', '--detach', '--accel', 'tcg', '--stick', stick.root, ...loginArgs(USER)], { input: `${PASSPHRASE}\n`, env });
    assert.equal(started.exitCode, 0, started.stderr);
    return started;
  };
  const stop = async () => {
    const stopped = await launcher(['stop', '--stick', stick.root], { env });
    assert.equal(stopped.exitCode, 0, stopped.stderr);
  };
  const confirm = async (rule: string, user = USER, passphrase = PASSPHRASE) => {
    const result = await launcherJson<{ confirmed: boolean }>(
      ['tables', 'confirm', rule, '--user', user, '--yes', '--passphrase-stdin', '--stick', stick.root],
      { env, input: `${passphrase}\n` },
    );
    assert.equal(result.exitCode, 0, result.stderr);
    assert.equal(result.json.confirmed, true);
  };

  before(async () => {
    stick = await freshStick();
    home = tempDir('pocketvm-tables-home-');
    mkdirSync(join(home, 'Documents'));
    writeFileSync(join(home, 'Documents', 'shared.txt'), 'shared on purpose\n');
    // Outside the home and every known folder.
    markerDir = mkdtempSync(join(tmpdir(), 'pocketvm-tables-marker-'));
    writeFileSync(join(markerDir, 'marker.txt'), `${MARKER}\n`);
    env = { HOME: home, XDG_CONFIG_HOME: join(home, '.config'), NO_COLOR: '1' };
    confirmations = join(stick.root, 'users', USER, 'tables-confirmed.json');
    await addStickUser(stick.root, USER, PASSPHRASE);
    await boot();
  });

  after(async () => {
    await launcher(['stop', '--force', '--stick', stick.root], { env });
    await stick.dispose();
    removeDir(home);
    removeDir(markerDir);
  });

  it('the ordinary guest user writes a rule for / and one for a folder outside the home', async () => {
    assert.notEqual((await ok('id -u')).trim(), '0');
    await ok(
      [
        "reg set 'Tables\\Rules\\Wide' Table string FET",
        "reg set 'Tables\\Rules\\Wide' GuestPath string /host/wide",
        "reg set 'Tables\\Rules\\Wide' HostPath string /",
        "reg set 'Tables\\Rules\\Marker' Table string FET",
        "reg set 'Tables\\Rules\\Marker' GuestPath string /host/marker",
        `reg set 'Tables\\Rules\\Marker' HostPath string '${markerDir}'`,
      ].join(' && '),
    );
    await stop();
  });

  it('after a relaunch nothing outside the shared folders is readable; forged and copied confirmations are refused', async () => {
    // Without the passphrase: a record with a made-up MAC, and a genuine
    // record of another user for the same rule, copied in.
    const markerRule = { table: 'FET' as const, guestPath: '/host/marker', hostPath: markerDir };
    await addStickUser(stick.root, OTHER, OTHER_PASSPHRASE);
    for (const [name, value] of [
      ['Table', 'FET'],
      ['GuestPath', '/host/marker'],
      ['HostPath', markerDir],
    ] as const) {
      const set = await launcher(['reg', 'set', '--stick', stick.root, '--user', OTHER, 'Tables\\Rules\\Marker', name, value], { env });
      assert.equal(set.exitCode, 0, set.stderr);
    }
    await confirm('Marker', OTHER, OTHER_PASSPHRASE);
    const copied = JSON.parse(readFileSync(join(stick.root, 'users', OTHER, 'tables-confirmed.json'), 'utf8')).confirmed[0];
    const forged = {
      fingerprint: ruleFingerprint(markerRule),
      rule: { name: 'Marker', ...markerRule },
      confirmedAt: new Date().toISOString(),
      mac: 'a'.repeat(64),
    };
    writeFileSync(confirmations, JSON.stringify({ format: 'pocketvm-table-confirmations', version: 2, confirmed: [forged, copied] }));

    const shown = await launcherJson<{ waiting: Array<{ id: string; exposes: string }> }>(['tables', 'show', '--user', USER, '--stick', stick.root], { env });
    assert.deepEqual(shown.json.waiting.map((w) => w.id).sort(), ['registry:Marker', 'registry:Wide']);

    const started = await boot();
    const refusals = started.stderr.split('\n').filter((line) => /tables-confirmed\.json: the confirmation of FET \/host\/marker .* is ignored/.test(line));
    assert.equal(refusals.length, 2, started.stderr);

    assert.deepEqual((await ok('ls /host')).trim().split('\n'), ['Documents']);
    assert.equal((await ok('cat /host/Documents/shared.txt')).trim(), 'shared on purpose');
    const marker = await guest(
      `grep -rs ${MARKER} /host; echo "rc=$?"; ls /host/marker /host/wide 2>&1; cat /host/wide/proc/1/environ /host/wide${markerDir}/marker.txt 2>&1`,
    );
    assert.doesNotMatch(marker.out, new RegExp(`${MARKER}`));
    assert.match(marker.out, /rc=1/);
    assert.match(marker.out, /No such file or directory/);
    await stop();
  });

  it('confirmed at the launcher with the passphrase, the folder appears; the rule for / still serves no /proc', async () => {
    await confirm('Marker');
    await confirm('registry:Wide');
    const started = await boot();
    assert.doesNotMatch(started.stderr, /tables-confirmed\.json/, 'the forged records were dropped, not signed over');
    assert.equal((await ok('cat /host/marker/marker.txt')).trim(), MARKER);
    const top = (await ok('ls /host/wide')).trim().split('\n');
    assert.ok(top.includes('tmp') && top.includes('etc'), top.join(' '));
    for (const hidden of ['proc', 'sys', 'dev', 'run']) assert.ok(!top.includes(hidden), `/host/wide/${hidden} is not served`);
    const proc = await guest(
      'for p in /host/wide/proc/1/environ /host/wide/proc/self/mem /host/wide/proc /host/wide/sys/kernel /host/wide/dev/null; do if cat "$p" >/dev/null 2>&1 || ls "$p" >/dev/null 2>&1; then echo "READABLE $p"; fi; done; echo done',
    );
    assert.equal(proc.out.trim(), 'done', proc.out);
    // The stick itself stays hidden too, under the rule for /.
    assert.match((await guest(`ls /host/wide${stick.root} 2>&1`)).out, /No such file or directory/);
  });
});
