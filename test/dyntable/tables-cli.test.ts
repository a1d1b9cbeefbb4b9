// `launcher tables show|explain|confirm` on a fresh stick, with a temporary
// HOME so the host side is known. No guest is booted.
// Test tier: integration (runs the launcher as a process).
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addStickUser, freshStick, launcher, launcherJson } from '../integration/harness.ts';
import { removeDir, tempDir } from './helpers.ts';

interface ShowJson {
  user: string | null;
  mountPoint: string;
  entries: Array<{
    id: string;
    guestPath: string;
    table: string;
    mode: string;
    origin: string;
    exposes: string[];
    target: { kind: string; hostPath?: string };
  }>;
  skipped: Array<{ id: string; reason: string }>;
  waiting: Array<{ id: string; guestPath: string; hostPath: string; why: string; exposes: string; lifts: string[]; confirmationRecorded: boolean }>;
  problems: Array<{ severity: string; message: string }>;
}

describe('launcher tables', function () {
  this.timeout(300_000);
  let stick: { root: string; dispose: () => Promise<void> };
  let home: string;
  let env: Record<string, string>;

  before(async () => {
    stick = await freshStick();
    home = tempDir('pocketvm-cli-home-');
    mkdirSync(join(home, 'Documents'));
    mkdirSync(join(home, '.ssh'));
    writeFileSync(join(home, '.ssh', 'id_ed25519'), 'KEY');
    env = { HOME: home, XDG_CONFIG_HOME: join(home, '.config'), NO_COLOR: '1' };
    await addStickUser(stick.root, 'anna', 'correct horse battery staple');
    const set = async (rule: string, name: string, value: string) => {
      const r = await launcher(['reg', 'set', `Tables\\Rules\\${rule}`, name, value, '--stick', stick.root], { env });
      assert.equal(r.exitCode, 0, r.stderr);
    };
    await set('Keys', 'Table', 'FET');
    await set('Keys', 'GuestPath', '\\host\\keys');
    await set('Keys', 'HostPath', '~/.ssh');
    await set('Keys', 'Mode', 'readonly');
    await set('Temp', 'Table', 'FIT');
    await set('Temp', 'GuestPath', '/host/Documents/TEMP');
  });

  after(async () => {
    await stick?.dispose();
    if (home) removeDir(home);
  });

  it('show prints the compiled table with origins, skipped rules and exclusions', async () => {
    const { exitCode, json } = await launcherJson<ShowJson>(['tables', 'show', '--stick', stick.root], { env });
    assert.equal(exitCode, 0);
    assert.equal(json.user, 'anna');
    assert.equal(json.mountPoint, '/host');
    assert.deepEqual(
      json.entries.map((e) => [e.guestPath, e.table, e.mode, e.origin]),
      [
        ['/host/Documents', 'FET', 'cow', 'builtin'],
        ['/host/Documents/TEMP', 'FIT', 'stick', 'registry'],
      ],
    );
    assert.equal(json.entries[0]!.target.hostPath, join(home, 'Documents'));
    assert.deepEqual(
      json.waiting.map((w) => [w.id, w.guestPath, w.hostPath, w.lifts]),
      [['registry:Keys', '/host/keys', join(home, '.ssh'), ['ssh']]],
    );
    assert.match(json.waiting[0]!.exposes, /SSH keys/);
    const human = await launcher(['tables', 'show', '--stick', stick.root, '--user', 'anna'], { env });
    assert.equal(human.exitCode, 0);
    assert.match(
      human.stdout,
      /needs confirmation[^\n]*\n +registry:Keys \(\/host\/keys ← ~\/\.ssh\): a FET rule from the guest registry, outside every known folder\n +would expose the host folder .*\.ssh and everything in it, read-only, including what is excluded by default: SSH keys/,
    );
    assert.match(human.stdout, /pseudo-fs +\/proc, \/sys, \/dev, \/run.* \(never served\)/);
    assert.match(human.stdout, /\/host\/Documents\/TEMP +FIT +stick +stick users\/anna\/files\/host\/Documents\/TEMP +registry/);
    assert.match(human.stdout, /ssh-keys +.*\.ssh/);
  });

  it('explain says which entry wins, where the path leads, and why', async () => {
    const temp = await launcherJson<{ entry: string; table: string; access: string; reason: string }>(
      ['tables', 'explain', '/host/Documents/TEMP/x', '--stick', stick.root],
      { env },
    );
    assert.equal(temp.json.entry, 'registry:Temp');
    assert.equal(temp.json.access, 'stick');
    assert.match(temp.json.reason, /most specific of: FIT \/host\/Documents\/TEMP .*FET \/host\/Documents/);
    const doc = await launcher(['tables', 'explain', 'Documents\\report.odt', '--stick', stick.root], { env });
    assert.equal(doc.exitCode, 0);
    assert.match(doc.stdout, /from +the host: .*Documents\/report\.odt/);
    assert.match(doc.stdout, /copy-on-write/);
    const waiting = await launcher(['tables', 'explain', '/host/keys/id_ed25519', '--stick', stick.root], { env });
    assert.match(waiting.stdout, /not in the namespace: .*\n +waiting +registry:Keys would map it once confirmed \(launcher tables confirm registry:Keys\)/);
    const out = await launcherJson<{ kind: string }>(['tables', 'explain', '/etc/passwd', '--stick', stick.root], { env });
    assert.equal(out.json.kind, 'unmapped');
    const unknown = await launcher(['tables', 'show', '--user', 'nobody', '--stick', stick.root], { env });
    assert.equal(unknown.exitCode, 11);
  });

  it('confirm takes the passphrase and lets a registry rule expose an excluded folder; --revoke takes it back', async () => {
    const refused = await launcher(['tables', 'confirm', 'Keys', '--stick', stick.root], { env });
    assert.equal(refused.exitCode, 2, 'no terminal and no --yes: nothing changes');
    const noPassphrase = await launcher(['tables', 'confirm', 'Keys', '--yes', '--stick', stick.root], { env });
    assert.equal(noPassphrase.exitCode, 2, 'no terminal to ask the passphrase at');
    const wrong = await launcher(['tables', 'confirm', 'Keys', '--yes', '--passphrase-stdin', '--stick', stick.root], { env, input: 'not the passphrase\n' });
    assert.equal(wrong.exitCode, 11, wrong.stderr);
    const confirmed = await launcherJson<{ confirmed: boolean; exposes: string[] }>(
      ['tables', 'confirm', 'Keys', '--yes', '--passphrase-stdin', '--stick', stick.root],
      { env, input: 'correct horse battery staple\n' },
    );
    assert.equal(confirmed.exitCode, 0, confirmed.stderr);
    assert.deepEqual(confirmed.json.exposes, ['ssh']);
    // Without the passphrase the confirmation is not trusted, only noted.
    let show = await launcherJson<ShowJson>(['tables', 'show', '--stick', stick.root], { env });
    assert.equal(
      show.json.entries.find((e) => e.guestPath === '/host/keys'),
      undefined,
    );
    assert.equal(show.json.waiting.find((w) => w.id === 'registry:Keys')?.confirmationRecorded, true);
    show = await launcherJson<ShowJson>(['tables', 'show', '--passphrase-stdin', '--stick', stick.root], { env, input: 'correct horse battery staple\n' });
    const keys = show.json.entries.find((e) => e.guestPath === '/host/keys');
    assert.equal(keys?.origin, 'confirmed');
    assert.deepEqual(keys?.exposes, ['ssh']);
    assert.deepEqual(show.json.waiting, []);
    const explained = await launcherJson<{ visible: boolean; access: string }>(
      ['tables', 'explain', '/host/keys/id_ed25519', '--passphrase-stdin', '--stick', stick.root],
      { env, input: 'correct horse battery staple\n' },
    );
    assert.deepEqual([explained.json.visible, explained.json.access], [true, 'readonly']);
    const confirmedFile = join(stick.root, 'users', 'anna', 'tables-confirmed.json');
    const older = readFileSync(confirmedFile);
    const revoked = await launcher(['tables', 'confirm', 'Keys', '--revoke', '--passphrase-stdin', '--stick', stick.root], {
      env,
      input: 'correct horse battery staple\n',
    });
    assert.equal(revoked.exitCode, 0, revoked.stderr);
    show = await launcherJson<ShowJson>(['tables', 'show', '--passphrase-stdin', '--stick', stick.root], { env, input: 'correct horse battery staple\n' });
    assert.equal(
      show.json.entries.find((e) => e.guestPath === '/host/keys'),
      undefined,
    );
    assert.equal(show.json.waiting.find((w) => w.id === 'registry:Keys')?.confirmationRecorded, false);

    // Whoever holds the stick puts the older file back (its record's MAC is valid): the launch is refused before anything starts.
    const current = readFileSync(confirmedFile);
    writeFileSync(confirmedFile, older);
    const run = await launcher(['run', '--detach', '--passphrase-stdin', '--stick', stick.root], { env, input: 'correct horse battery staple\n' });
    if (run.exitCode === 0) await launcher(['stop', '--stick', stick.root], { env });
    assert.equal(run.exitCode, 10, run.stderr);
    assert.match(
      run.stderr,
      /tables-confirmed\.json is an older copy: it confirms FET .host.keys ← ~\/\.ssh \(Tables\\Rules\\Keys\), which was withdrawn since/,
    );
    assert.deepEqual(readFileSync(confirmedFile), older, 'nothing was changed');
    writeFileSync(confirmedFile, current);
  });
});
