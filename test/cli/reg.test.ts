// `launcher reg` on a fresh stick (no guest boots): get/set/del/ls, export and
// import in both formats, the layers, typed errors and their exit codes, and a
// write while another process (as a session would) has the registry open.
// Test tier: integration (runs the launcher as a process).
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hostFingerprint } from '../../src/platform/host-fingerprint.ts';
import { GuestRegistry, type RegistryChange } from '../../src/guestregistry/registry.ts';
import { registryPaths, stickLayout } from '../../src/stick/layout.ts';
import { addStickUser, freshStick, launcher, launcherJson } from '../integration/harness.ts';

describe('launcher reg', function () {
  this.timeout(180_000);
  let stick: { root: string; dispose: () => Promise<void> };
  const reg = (...args: string[]) => launcher(['reg', ...args, '--stick', stick.root]);
  const regJson = <T>(...args: string[]) => launcherJson<T>(['reg', ...args, '--stick', stick.root]);

  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'alice', 'alice passphrase');
  });
  after(() => stick.dispose());

  it('lists the payload defaults, sets values of every type, reads them back with their layer', async () => {
    const top = await reg('ls');
    assert.equal(top.exitCode, 0, top.stderr);
    assert.equal(top.stdout, 'Guest\\\nMachine\\\nTables\\\n');
    const cases: Array<[string, string[], unknown]> = [
      ['string', ['hello world'], 'hello world'],
      ['expand-string', ['%HOME%\\x'], '%HOME%\\x'],
      ['int32', ['-5'], -5],
      ['int64', ['0x7fffffffffffffff'], '9223372036854775807'],
      ['bool', ['yes'], true],
      ['binary', ['01,ff'], '01ff'],
      ['multi-string', ['a', 'b c', ''], ['a', 'b c', '']],
    ];
    for (const [type, words, data] of cases) {
      const set = await reg('set', 'Types', type, ...words, '--type', type);
      assert.equal(set.exitCode, 0, set.stderr);
      const { exitCode, json } = await regJson<{ type: string; data: unknown; layer: string }>('get', 'types', type.toUpperCase());
      assert.equal(exitCode, 0);
      assert.deepEqual(json, { key: 'types', name: type.toUpperCase(), layer: 'user', type, data });
    }
    const text = await reg('get', 'Types', 'multi-string');
    assert.equal(text.stdout, 'a\nb c\n\n');
    const hostname = await regJson<{ layer: string; data: string }>('get', 'Guest', 'Hostname');
    assert.deepEqual([hostname.json.layer, hostname.json.data], ['defaults', 'pocketvm']);
    const ls = await reg('ls', 'Types');
    assert.match(ls.stdout, /^int64 +int64 +9223372036854775807 +\(user\)$/m);
  });

  it("each guest has its own registry: --guest reaches a created guest's, over its payload's defaults (docs/guests.md, Several at once)", async function () {
    // Seven launcher runs: generous, never a test that fails on time under load.
    this.timeout(600_000);
    const created = await launcher(['guest', 'create', 'play', '--from', 'default', '--stick', stick.root]);
    assert.equal(created.exitCode, 0, created.stderr);
    assert.equal((await reg('set', 'Own', 'Who', 'play', '--guest', 'play')).exitCode, 0);
    assert.equal((await reg('set', 'Own', 'Who', 'default')).exitCode, 0);
    assert.equal((await reg('get', 'Own', 'Who', '--guest', 'play')).stdout, 'play\n');
    assert.equal((await reg('get', 'Own', 'Who')).stdout, 'default\n');
    // The payload's defaults are under play's too (it boots the default payload).
    assert.equal((await regJson<{ layer: string; data: string }>('get', 'Guest', 'Hostname', '--guest', 'play')).json.layer, 'defaults');
    assert.equal(registryPaths(stickLayout(stick.root), 'alice', 'play').file, join(stick.root, 'users', 'alice', 'guests', 'play', 'registry.sqlite'));
    assert.ok(readdirSync(join(stick.root, 'users', 'alice', 'guests', 'play')).includes('registry.sqlite'));
  });

  it("writes the host layer under this host's fingerprint; it hides the user layer; deleting uncovers it", async () => {
    assert.equal((await reg('set', 'Guest', 'Hostname', 'mine')).exitCode, 0);
    assert.equal((await reg('set', 'Guest', 'Hostname', 'here-only', '--layer', 'host')).exitCode, 0);
    assert.equal((await regJson<{ layer: string }>('get', 'Guest', 'Hostname')).json.layer, 'host');
    const layout = stickLayout(stick.root);
    const registry = GuestRegistry.open({ file: registryPaths(layout, 'alice', 'default').file, hostId: await hostFingerprint(layout.hostSalt) });
    assert.deepEqual(registry.getInLayer('host', 'Guest', 'Hostname'), { type: 'string', data: 'here-only' });
    registry.close();
    const del = await reg('del', 'Guest', 'Hostname', '--layer', 'host');
    assert.match(del.stdout, /deleted the value Guest\\Hostname from alice's host layer \(the user layer's value shows now\)/);
    assert.equal((await regJson<{ data: string }>('get', 'Guest', 'Hostname')).json.data, 'mine');
  });

  it('refuses bad input with one line and exit 12 (type, well-known type, limit, not found) and exit 2 for usage', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['set', 'K', 'n', 'abc', '--type', 'int32'], 12, /"abc" is not an int32/],
      [['set', 'Machine', 'MemoryMiB', '512'], 12, /Machine\\MemoryMiB must be of type int32, not string/],
      [['set', 'k'.repeat(256), 'n', 'v'], 12, /limit is 255/],
      [['get', 'Nope', 'n'], 12, /there is no value Nope\\n/],
      [['del', 'Guest', 'Hostname', '--layer', 'host'], 12, /there is no value Guest\\Hostname in alice's host layer/],
      [['ls', 'Nope'], 12, /there is no key Nope/],
      [['set', 'K', 'n', 'a', 'b'], 2, /a string value is one argument, not 2/],
      [['set', 'K', 'n', 'v', '--layer', 'defaults'], 2, /Allowed choices are user, host/],
      [['get', 'K', 'n', '--user', 'bob'], 11, /there is no user "bob"/],
    ];
    for (const [args, code, pattern] of cases) {
      const result = await reg(...args);
      assert.equal(result.exitCode, code, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, pattern);
      if (code === 12) assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    }
    const json = await regJson<{ error: { code: number; reason: string } }>('set', 'K', 'n', 'x', '--type', 'bool');
    assert.deepEqual([json.exitCode, json.json.error.code, json.json.error.reason], [12, 12, 'type']);
  });

  it('exports (v5 as UTF-16LE, REGEDIT4 as UTF-8) and imports the file back exactly; a bad file names its line and imports nothing', async () => {
    const dir = join(stick.root, '..');
    for (const format of ['v5', 'regedit4']) {
      const file = join(dir, `user-${format}.reg`);
      const exported = await reg('export', file, '--layer', 'user', '--format', format);
      assert.equal(exported.exitCode, 0, exported.stderr);
      const bytes = await readFile(file);
      if (format === 'v5') assert.deepEqual([...bytes.subarray(0, 2)], [0xff, 0xfe]);
      else assert.ok(bytes.toString('utf8').startsWith('REGEDIT4\r\n'));
      // Wipe the user layer, import the file, export again: the same bytes.
      for (const key of ['Types', 'Guest', 'K']) await reg('del', key);
      const imported = await regJson<{ values: number }>('import', file);
      assert.equal(imported.exitCode, 0);
      assert.ok(imported.json.values >= 8);
      const again = join(dir, `again-${format}.reg`);
      await reg('export', again, '--layer', 'user', '--format', format);
      assert.deepEqual(await readFile(again), bytes);
    }
    const before = (await reg('export', '--layer', 'user')).stdout;
    const bad = join(dir, 'bad.reg');
    writeFileSync(bad, 'REGEDIT4\r\n\r\n[-HKEY_POCKETVM\\Types]\r\n[HKEY_POCKETVM\\New]\r\n"ok"="1"\r\n"broken"=hex:0g\r\n');
    const refused = await reg('import', bad);
    assert.equal(refused.exitCode, 12);
    assert.match(refused.stderr, /bad\.reg line 6: "0g" is not a hex byte; nothing was imported/);
    assert.equal((await reg('export', '--layer', 'user')).stdout, before);
    const fromStdin = await launcher(['reg', 'import', '-', '--stick', stick.root], {
      input: 'Windows Registry Editor Version 5.00\n[HKEY_POCKETVM\\Piped]\n"v"=dword:0000000a\n',
    });
    assert.equal(fromStdin.exitCode, 0, fromStdin.stderr);
    assert.equal((await reg('get', 'Piped', 'v')).stdout, '10\n');
  });

  it('writes while another process holds the registry open and watches it (as a running session does)', async () => {
    const layout = stickLayout(stick.root);
    const session = GuestRegistry.open({ file: registryPaths(layout, 'alice', 'default').file, hostId: await hostFingerprint(layout.hostSalt), pollMs: 50 });
    const heard: RegistryChange[] = [];
    session.watch((change) => heard.push(change));
    const set = await reg('set', 'Live', 'Counter', '7', '--type', 'int32');
    assert.equal(set.exitCode, 0, set.stderr);
    const deadline = Date.now() + 5000;
    while (heard.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(heard, [{ key: 'Live', name: 'Counter', layer: 'user' }]);
    assert.equal(session.getAs('Live', 'Counter', 'int32'), 7);
    session.set('user', 'Live', 'FromSession', { type: 'bool', data: true });
    assert.equal((await reg('get', 'Live', 'FromSession')).stdout, 'true\n');
    session.close();
  });

  it('restores a damaged registry from its last good copy, saying so in one line', async () => {
    const file = registryPaths(stickLayout(stick.root), 'alice', 'default').file;
    writeFileSync(file, 'this is not a database'.repeat(100));
    const ls = await reg('ls', 'Live');
    assert.equal(ls.exitCode, 0, ls.stderr);
    assert.match(
      ls.stderr,
      /^pocketvm: the registry registry\.sqlite was damaged \(the file does not start with the SQLite header\); restored the last good copy \(saved [^)]+\); the damaged file is kept as registry\.sqlite\.corrupt-\S+\n$/,
    );
    assert.match(ls.stdout, /Counter/);
    assert.ok(readdirSync(join(stick.root, 'users', 'alice')).some((name) => name.startsWith('registry.sqlite.corrupt-')));
  });

  it('needs --user when the stick has several users', async () => {
    await addStickUser(stick.root, 'bob', 'bob passphrase!');
    const result = await reg('ls');
    assert.equal(result.exitCode, 2);
    assert.match(result.stderr, /this stick has 2 users; say whose registry with --user NAME/);
    assert.equal((await reg('ls', '--user', 'bob')).exitCode, 0);
  });
});
