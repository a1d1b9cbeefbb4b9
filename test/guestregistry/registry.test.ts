// The guest registry on a temp folder: layers, every type, enumeration,
// deletion, limits, type checks, import all-or-nothing, watch (in this
// process and from another one), and damaged files.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { PayloadError, RegFileError, RegistryError, RegistryLimitError, RegistryTypeError } from '../../src/errors.ts';
import { GuestRegistry, type RegistryChange } from '../../src/guestregistry/registry.ts';
import { REG_LIMITS, regValueEquals, type RegValue } from '../../src/guestregistry/value.ts';
import { WELL_KNOWN } from '../../src/guestregistry/well-known.ts';
import { EVERY_TYPE } from './fixtures.ts';

const registryModule = fileURLToPath(new URL('../../src/guestregistry/registry.ts', import.meta.url));
const str = (data: string): RegValue => ({ type: 'string', data });
const DEFAULTS = `Windows Registry Editor Version 5.00\r\n\r\n[HKEY_POCKETVM\\Guest]\r\n"Hostname"="from-defaults"\r\n"Keyboard"="us"\r\n\r\n[HKEY_POCKETVM\\Machine]\r\n\r\n[HKEY_POCKETVM\\Shipped\\Deep]\r\n"x"=dword:00000001\r\n`;

describe('guest registry (GuestRegistry on a folder)', function () {
  this.timeout(60_000);
  let dir: string;
  let file: string;
  let defaultsFile: string;
  const open = (extra: Partial<Parameters<typeof GuestRegistry.open>[0]> = {}) => GuestRegistry.open({ file, defaultsFile, hostId: 'host-a', ...extra });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pocketvm-registry-'));
    file = join(dir, 'registry.sqlite');
    defaultsFile = join(dir, 'registry.reg');
    writeFileSync(defaultsFile, DEFAULTS);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('reads layers top-down: session > host > user > defaults; deleting a layer value uncovers the one below', () => {
    const registry = open({ session: [{ key: 'Guest', name: 'Hostname', value: str('from-session') }] });
    assert.deepEqual(registry.get('Guest', 'Hostname'), { value: str('from-session'), layer: 'session' });
    registry.set('user', 'Guest', 'Keyboard', str('de'));
    assert.deepEqual(registry.get('guest', 'KEYBOARD'), { value: str('de'), layer: 'user' });
    registry.set('host', 'Guest', 'Keyboard', str('fr'));
    assert.deepEqual(registry.get('Guest', 'Keyboard'), { value: str('fr'), layer: 'host' });
    assert.equal(registry.deleteValue('host', 'Guest', 'Keyboard'), true);
    assert.equal(registry.get('Guest', 'Keyboard')?.layer, 'user');
    assert.equal(registry.deleteValue('user', 'Guest', 'Keyboard'), true);
    assert.deepEqual(registry.get('Guest', 'Keyboard'), { value: str('us'), layer: 'defaults' });
    assert.equal(registry.deleteValue('user', 'Guest', 'Keyboard'), false);
    assert.deepEqual(
      registry.values('Guest').map((v) => [v.name, v.layer]),
      [
        ['Hostname', 'session'],
        ['Keyboard', 'defaults'],
      ],
    );
    registry.close();
  });

  it('keeps each host its own layer, and never persists session facts', () => {
    const a = open({ session: [{ key: 'Host\\Cpu', name: 'Model', value: str('fast') }] });
    a.set('host', 'Machine', 'MemoryMiB', { type: 'int32', data: 512 });
    a.set('user', 'Machine', 'Cpus', { type: 'int32', data: 2 });
    assert.equal(a.get('Host\\Cpu', 'Model')?.layer, 'session');
    a.close();
    const b = open({ hostId: 'host-b' });
    assert.equal(b.get('Machine', 'MemoryMiB'), undefined);
    assert.deepEqual(b.get('Machine', 'Cpus'), { value: { type: 'int32', data: 2 }, layer: 'user' });
    assert.equal(b.get('Host\\Cpu', 'Model'), undefined);
    assert.equal(b.hasKey('Host'), false);
    b.close();
    const again = open();
    assert.deepEqual(again.get('Machine', 'MemoryMiB'), { value: { type: 'int32', data: 512 }, layer: 'host' });
    again.close();
    const db = new DatabaseSync(file, { readOnly: true });
    assert.equal((db.prepare("SELECT count(*) AS n FROM vals WHERE key_lc LIKE 'host%'").get() as { n: number }).n, 0);
    db.close();
  });

  it('stores and returns every type exactly, across a reopen', () => {
    const registry = open();
    for (const { key, name, value } of EVERY_TYPE) registry.set('user', key, name, value);
    registry.close();
    const reopened = open();
    for (const { key, name, value } of EVERY_TYPE) {
      const found = reopened.get(key, name);
      assert.ok(found && regValueEquals(found.value, value), `${key}\\${name}`);
      assert.equal(found.layer, 'user');
    }
    reopened.close();
  });

  it('enumerates subkeys and values over all layers, case-insensitively and case-preserving; deletes keys with their subtree', () => {
    const registry = open({ session: [{ key: 'Host\\Display', name: 'Kind', value: str('x11') }] });
    registry.set('user', 'Tables\\Rules\\One', 'a', str('1'));
    registry.set('user', 'TABLES\\rules\\Two', 'b', str('2'));
    registry.set('host', 'tables\\Other', 'c', str('3'));
    registry.createKey('user', 'Empty\\Key');
    assert.deepEqual(registry.subkeys(''), ['Empty', 'Guest', 'Host', 'Machine', 'Shipped', 'Tables']);
    assert.deepEqual(registry.subkeys('tables'), ['Other', 'Rules']);
    assert.deepEqual(registry.subkeys('Tables\\Rules'), ['One', 'Two']);
    assert.deepEqual(registry.subkeys('Empty'), ['Key']);
    assert.deepEqual(registry.subkeys('Shipped'), ['Deep']);
    assert.deepEqual(registry.subkeys('Nope'), []);
    assert.ok(registry.hasKey('EMPTY\\KEY'));
    // The spelling first written is kept.
    assert.match(registry.exportReg({ layer: 'user' }), /\[HKEY_POCKETVM\\Tables\\Rules\\Two\]/);
    assert.equal(registry.deleteKey('user', 'tables\\RULES'), true);
    assert.deepEqual(registry.subkeys('Tables'), ['Other']);
    assert.equal(registry.get('Tables\\Rules\\One', 'a'), undefined);
    assert.equal(registry.deleteKey('user', 'Tables\\Rules'), false);
    assert.equal(registry.deleteKey('user', 'Tables'), true);
    assert.deepEqual(registry.subkeys('Tables'), ['Other']);
    registry.close();
  });

  it('refuses writes to defaults and session', () => {
    const registry = open();
    for (const layer of ['defaults', 'session']) {
      assert.throws(
        () => registry.set(layer as 'user', 'Guest', 'Hostname', str('x')),
        (e: unknown) => e instanceof RegistryError && e.details['reason'] === 'layer' && e.exitCode === 12,
      );
      assert.throws(() => registry.importReg('REGEDIT4\n', layer as 'user'), RegistryError);
    }
    registry.close();
  });

  it("refuses writes under Host\\ (the session's read-only facts) in every layer, by set, createKey and import", () => {
    const registry = open();
    const readOnlyKey = (e: unknown) =>
      e instanceof RegistryError && e.details['reason'] === 'read-only-key' && e.exitCode === 12 && /read-only facts/.test(e.message);
    for (const layer of ['user', 'host'] as const) {
      for (const key of ['Host', 'host\\Cpu', 'HOST\\Os\\Deep']) {
        assert.throws(() => registry.set(layer, key, 'Model', str('x')), readOnlyKey);
        assert.throws(() => registry.createKey(layer, key), readOnlyKey);
      }
      // An import (say, of an exported merged view) skips Host\ and counts what it skipped.
      assert.deepEqual(
        registry.importReg('REGEDIT4\n[HKEY_POCKETVM\\Guest]\n"Hostname"="a"\n[HKEY_POCKETVM\\Host\\Cpu]\n"Model"="x"\n"Speed"=dword:00000001\n', layer),
        { keys: 1, values: 1, deletions: 0, skipped: 2 },
      );
    }
    assert.equal(registry.subkeys('Host').length, 0);
    registry.close();
  });

  it('checks types: data against its type, well-known values against theirs, getAs', () => {
    const registry = open();
    const bad: unknown[] = [
      { type: 'int32', data: '5' },
      { type: 'int32', data: 2 ** 31 },
      { type: 'int32', data: 1.5 },
      { type: 'int64', data: 5 },
      { type: 'int64', data: 2n ** 63n },
      { type: 'bool', data: 1 },
      { type: 'binary', data: [1, 2] },
      { type: 'multi-string', data: 'a' },
      { type: 'multi-string', data: ['a', 3] },
      { type: 'string', data: 'nul\0inside' },
      { type: 'float', data: 1 },
      null,
    ];
    for (const value of bad)
      assert.throws(
        () => registry.set('user', 'K', 'v', value as RegValue),
        RegistryTypeError,
        JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? String(v) : v)),
      );
    for (const entry of Object.values(WELL_KNOWN)) {
      const wrong: RegValue = entry.type === 'string' ? { type: 'int32', data: 1 } : str('1');
      assert.throws(() => registry.set('user', entry.key, entry.name.toUpperCase(), wrong), /must be of type/);
    }
    registry.set('user', 'Machine', 'memorymib', { type: 'int32', data: 300 });
    assert.equal(registry.values('Machine')[0]?.name, 'MemoryMiB', 'well-known names keep their spelling');
    assert.equal(registry.getAs('Machine', 'MemoryMiB', 'int32'), 300);
    assert.equal(registry.getAs('Machine', 'Cpus', 'int32'), undefined);
    registry.set('user', 'K', 'v', str('x'));
    assert.throws(() => registry.getAs('K', 'v', 'int32'), /is of type string \(from the user layer\), expected int32/);
    assert.equal(registry.get('K', 'v')?.value.type, 'string', 'a failed write changed nothing');
    registry.close();
  });

  it('enforces the documented limits', () => {
    const registry = open();
    const limit = (fn: () => void, which: string) => assert.throws(fn, (e: unknown) => e instanceof RegistryLimitError && e.exitCode === 12, which);
    limit(() => registry.set('user', 'k'.repeat(REG_LIMITS.keyNameChars + 1), 'v', str('')), 'key name');
    registry.set('user', 'k'.repeat(REG_LIMITS.keyNameChars), 'v', str(''));
    limit(() => registry.set('user', Array(9).fill('x'.repeat(255)).join('\\'), 'v', str('')), 'key path');
    limit(
      () =>
        registry.set(
          'user',
          Array(REG_LIMITS.keyDepth + 1)
            .fill('k')
            .join('\\'),
          'v',
          str(''),
        ),
      'depth',
    );
    registry.set('user', Array(REG_LIMITS.keyDepth).fill('k').join('\\'), 'v', str(''));
    limit(() => registry.set('user', '', 'v', str('')), 'empty key');
    limit(() => registry.set('user', 'a\\\\b', 'v', str('')), 'empty component');
    limit(() => registry.set('user', '\\a', 'v', str('')), 'leading backslash');
    limit(() => registry.set('user', 'a\nb', 'v', str('')), 'control character');
    limit(() => registry.set('user', 'K', 'n'.repeat(REG_LIMITS.valueNameChars + 1), str('')), 'value name');
    limit(() => registry.set('user', 'K', 'v', { type: 'binary', data: new Uint8Array(REG_LIMITS.valueBytes + 1) }), 'binary size');
    limit(() => registry.set('user', 'K', 'v', str('x'.repeat(REG_LIMITS.valueBytes / 2))), 'string size (UTF-16 with terminator)');
    registry.set('user', 'K', 'v', { type: 'binary', data: new Uint8Array(REG_LIMITS.valueBytes) });
    // Values per key: the import that would pass the limit names its line and imports nothing.
    const lines = ['REGEDIT4', '[HKEY_POCKETVM\\Many]'];
    for (let i = 0; i <= REG_LIMITS.valuesPerKey; i++) lines.push(`"v${i}"=dword:00000001`);
    assert.throws(
      () => registry.importReg(lines.join('\n'), 'user'),
      (e: unknown) => e instanceof RegFileError && e.line === REG_LIMITS.valuesPerKey + 3 && /limit is 16384/.test(e.message),
    );
    assert.equal(registry.hasKey('Many'), false);
    lines.pop();
    assert.equal(registry.importReg(lines.join('\n'), 'user').values, REG_LIMITS.valuesPerKey);
    assert.throws(() => registry.set('user', 'many', 'one more', str('')), RegistryLimitError);
    registry.set('user', 'many', 'V0', { type: 'int32', data: 2 });
    assert.equal(registry.values('Many').length, REG_LIMITS.valuesPerKey);
    registry.close();
  });

  it('imports a .reg file as one transaction: a bad line anywhere imports nothing', () => {
    const registry = open();
    registry.set('user', 'Keep', 'me', str('before'));
    const text = [
      'Windows Registry Editor Version 5.00',
      '',
      '[-HKEY_POCKETVM\\Keep]',
      '[HKEY_POCKETVM\\New]',
      '"a"="1"',
      '"Hostname"=dword:00000001',
      '',
    ].join('\r\n');
    assert.throws(
      () => registry.importReg(text.replace('[HKEY_POCKETVM\\New]', '[HKEY_POCKETVM\\Guest]'), 'user', { source: 'in.reg' }),
      (e: unknown) => e instanceof RegFileError && e.line === 6 && /in\.reg line 6: Guest\\Hostname must be of type string/.test(e.message),
    );
    assert.deepEqual(registry.get('Keep', 'me')?.value, str('before'));
    assert.equal(registry.hasKey('New'), false);
    assert.deepEqual(registry.importReg(text, 'user'), { keys: 1, values: 2, deletions: 1 });
    assert.equal(registry.hasKey('Keep'), false);
    assert.deepEqual(registry.get('New', 'Hostname')?.value, { type: 'int32', data: 1 });
    registry.close();
  });

  for (const format of ['v5', 'regedit4'] as const) {
    it(`exports and re-imports every type losslessly (${format}; one layer, the merged view, a subtree)`, () => {
      const registry = open({ session: [{ key: 'Host\\Os', name: 'Name', value: str('linux') }] });
      for (const { key, name, value } of EVERY_TYPE) registry.set('user', key, name, value);
      registry.set('host', 'Types', 'host only', { type: 'int64', data: -1n });
      const userText = registry.exportReg({ layer: 'user', format });
      const merged = registry.exportReg({ format });
      assert.match(merged, /from-defaults|pocket-box/);
      assert.match(merged, /\[HKEY_POCKETVM\\Host\\Os\]/);
      assert.doesNotMatch(userText, /host only|Shipped/);
      const subtree = registry.exportReg({ key: 'types\\sub key', format });
      assert.ok(subtree.includes('[HKEY_POCKETVM\\Types\\Sub Key]') && subtree.includes('Deeper [x]') && !subtree.includes('"quoted"'));
      assert.throws(() => registry.exportReg({ key: 'Nope' }), /there is no key Nope/);
      registry.close();

      // The same session facts: an import skips Host\ (the session's own), so the merged views match.
      const other = GuestRegistry.open({
        file: join(dir, 'other.sqlite'),
        defaultsFile,
        hostId: 'host-a',
        session: [{ key: 'Host\\Os', name: 'Name', value: str('linux') }],
      });
      other.importReg(userText, 'user');
      assert.equal(other.exportReg({ layer: 'user', format }), userText);
      for (const { key, name, value } of EVERY_TYPE) assert.ok(regValueEquals(other.get(key, name)!.value, value), name);
      other.importReg(merged, 'host');
      assert.equal(other.exportReg({ format }), merged, 'the merged view survives a round trip through one layer');
      other.close();
    });
  }

  it('tells watchers about changes here and changes committed by another process on the same file', async () => {
    const registry = open({ pollMs: 50 });
    const seen: RegistryChange[] = [];
    const stop = registry.watch((change) => seen.push(change));
    registry.set('user', 'Guest', 'Hostname', str('here'));
    registry.deleteKey('user', 'Guest');
    registry.set('host', 'Machine', 'Cpus', { type: 'int32', data: 2 });
    registry.setSessionFacts([{ key: 'Host\\Os', name: 'Name', value: str('linux') }]);
    assert.deepEqual(seen, [
      { key: 'Guest', name: 'Hostname', layer: 'user' },
      { key: 'Guest', layer: 'user' },
      { key: 'Machine', name: 'Cpus', layer: 'host' },
      { key: 'Host\\Os', name: 'Name', layer: 'session' },
    ]);
    seen.length = 0;
    const script = `
      const { GuestRegistry } = await import(${JSON.stringify(registryModule)});
      const r = GuestRegistry.open({ file: ${JSON.stringify(file)}, hostId: 'host-a' });
      r.set('user', 'From\\\\Child', 'n', { type: 'int32', data: 7 });
      r.set('host', 'From\\\\Child', 'h', { type: 'bool', data: true });
      const o = GuestRegistry.open({ file: ${JSON.stringify(file)}, hostId: 'host-z' });
      o.set('host', 'Elsewhere', 'x', { type: 'bool', data: true });
      r.close(); o.close();`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 0, stderr);
    const deadline = Date.now() + 5000;
    while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(
      seen,
      [
        { key: 'From\\Child', name: 'n', layer: 'user' },
        { key: 'From\\Child', name: 'h', layer: 'host' },
      ],
      "another host's layer is not ours to hear about",
    );
    assert.deepEqual(registry.get('From\\Child', 'n')?.value, { type: 'int32', data: 7 });
    stop();
    registry.set('user', 'After', 'stop', str(''));
    assert.equal(seen.length, 2);
    registry.close();
  });

  it('opens a file while another connection holds a write transaction (busy timeout), and reads the committed state', () => {
    const registry = open();
    registry.set('user', 'A', 'v', str('1'));
    const other = new DatabaseSync(file, { timeout: 5000 });
    other.exec('BEGIN IMMEDIATE');
    const second = open();
    assert.deepEqual(second.get('A', 'v')?.value, str('1'));
    other.exec('COMMIT');
    other.close();
    second.set('user', 'A', 'v', str('2'));
    assert.deepEqual(registry.get('A', 'v')?.value, str('2'));
    second.close();
    registry.close();
  });

  it('uses a rollback journal with full sync and no mmap (settings for FAT sticks); creates the user folder', () => {
    file = join(dir, 'users', 'new', 'registry.sqlite');
    const registry = open();
    registry.close();
    assert.ok(existsSync(`${file}.last-good`), 'a new file gets its last good copy at once');
    const db = new DatabaseSync(file);
    assert.equal((db.prepare('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode, 'delete');
    db.close();
    assert.ok(!existsSync(`${file}-wal`) && !existsSync(`${file}-shm`));
  });

  describe('damaged files', () => {
    function filled(): void {
      const registry = open();
      registry.transaction(() => {
        for (let i = 0; i < 400; i++) registry.set('user', `Bulk\\K${i % 20}`, `v${i}`, str(`value ${i} ${'x'.repeat(100)}`));
      });
      registry.set('user', 'Guest', 'Hostname', str('good'));
      registry.close(); // writes the last good copy
      const after = open();
      after.set('user', 'Guest', 'Hostname', str('newer, lost with the damage'));
      after.close({ backup: false });
    }

    const damages: Array<[string, () => void]> = [
      ['a garbage header', () => writeFileSync(file, Buffer.concat([Buffer.from('not a database at all'), readFileSync(file).subarray(21)]))],
      ['a truncated file', () => writeFileSync(file, readFileSync(file).subarray(0, 100))],
      ['an empty file', () => writeFileSync(file, '')],
      [
        'garbage in the b-tree pages (header intact)',
        () => {
          const bytes = readFileSync(file);
          for (let at = 4096; at < bytes.length; at += 4096) bytes.fill(0xa5, at + 8, at + 400);
          writeFileSync(file, bytes);
        },
      ],
    ];
    for (const [what, damage] of damages) {
      it(`detects ${what}, moves the file aside and restores the last good copy, with one clear line`, () => {
        filled();
        damage();
        const told: string[] = [];
        const registry = open({ onRecovery: (r) => told.push(r.message) });
        assert.ok(registry.recovery?.restored);
        assert.equal(told.length, 1);
        assert.match(
          told[0]!,
          /^the registry registry\.sqlite was damaged \(.+\); restored the last good copy \(saved .+\); the damaged file is kept as registry\.sqlite\.corrupt-\d{8}T\d{6}$/,
        );
        assert.ok(existsSync(registry.recovery.movedTo));
        assert.deepEqual(registry.get('Guest', 'Hostname'), { value: str('good'), layer: 'user' });
        assert.equal(registry.values('Bulk\\K3').length, 20);
        registry.set('user', 'Guest', 'Hostname', str('works again'));
        registry.close();
        const db = new DatabaseSync(file, { readOnly: true });
        assert.deepEqual(
          db
            .prepare('PRAGMA integrity_check')
            .all()
            .map((row) => ({ ...row })),
          [{ integrity_check: 'ok' }],
        );
        db.close();
      });
    }

    it('two damaged files in the same second are both kept, under different names', () => {
      filled();
      // Names a damaged copy from these seconds would take are taken already.
      const stamp = (ms: number) => new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
      const taken = [0, 1, 2, 3, 4, 5].map((s) => `${file}.corrupt-${stamp(Date.now() + s * 1000)}`);
      for (const name of taken) writeFileSync(name, 'kept from before');
      writeFileSync(file, 'first damage'.repeat(200));
      const first = open();
      first.close({ backup: false });
      writeFileSync(file, 'second damage'.repeat(200));
      const second = open();
      second.close({ backup: false });
      const kept = [first.recovery?.movedTo, second.recovery?.movedTo];
      assert.ok(kept[0] && kept[1] && kept[0] !== kept[1], `${kept.join(' ')}`);
      assert.match(readFileSync(kept[0]!, 'utf8'), /^first damage/);
      assert.match(readFileSync(kept[1]!, 'utf8'), /^second damage/);
      for (const name of taken) assert.equal(readFileSync(name, 'utf8'), 'kept from before');
    });

    it('without a last good copy, starts empty and says so (the damaged file is kept)', () => {
      filled();
      writeFileSync(`${file}.last-good`, 'also damaged');
      writeFileSync(file, 'garbage'.repeat(200));
      const registry = open();
      assert.equal(registry.recovery?.restored, false);
      assert.match(registry.recovery.message, /had no last good copy; starting with an empty registry; the damaged file is kept as registry\.sqlite\.corrupt-/);
      assert.deepEqual(registry.get('Guest', 'Hostname')?.layer, 'defaults');
      registry.close();
      assert.ok(readdirSync(dir).some((name) => name.startsWith('registry.sqlite.corrupt-')));
      // The next open is quiet: the new file is sound and has its own last good copy.
      const next = open();
      assert.equal(next.recovery, undefined);
      next.close();
      assert.ok(statSync(`${file}.last-good`).size > 0);
    });

    it('a full integrity_check is available on open', () => {
      filled();
      const registry = open({ check: 'full' });
      assert.equal(registry.recovery, undefined);
      registry.close();
    });
  });

  it('reports a malformed payload defaults file with its line', () => {
    writeFileSync(defaultsFile, 'REGEDIT4\n\n[HKEY_POCKETVM\\Guest]\n"Hostname"=dword:00000001\n');
    assert.throws(
      () => open(),
      (e: unknown) => e instanceof PayloadError && /registry\.reg line 4: Guest\\Hostname must be of type string/.test(e.message),
    );
    writeFileSync(defaultsFile, 'REGEDIT4\n[HKEY_POCKETVM\\Guest]\n"a"=hex:zz\n');
    assert.throws(
      () => open(),
      (e: unknown) => e instanceof PayloadError && /line 3: "zz" is not a hex byte/.test(e.message),
    );
  });

  it('ships payload defaults that load: a hostname, and the well-known keys', () => {
    const registry = GuestRegistry.open({ file, defaultsFile: fileURLToPath(new URL('../../payload/default/registry.reg', import.meta.url)), hostId: 'h' });
    assert.equal(registry.getAs('Guest', 'Hostname', 'string'), 'pocketvm');
    // Unset, so the guest follows the host's keyboard and zone, and sizing follows guest.json.
    for (const name of ['Keyboard', 'Timezone']) assert.equal(registry.get('Guest', name), undefined);
    for (const name of ['MemoryMiB', 'Cpus']) assert.equal(registry.get('Machine', name), undefined);
    assert.deepEqual(registry.subkeys(''), ['Guest', 'Machine', 'Tables']);
    registry.close();
  });
});
