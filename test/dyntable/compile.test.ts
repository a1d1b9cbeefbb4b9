// The confirmation gate of the compiler: a rule that widens what the guest
// sees (any registry FET rule, any rule outside the known folders) waits for
// the person; pseudo and device file systems never compile.
import assert from 'node:assert/strict';
import { builtinRules, compileTable, manifestRules } from '../../src/dyntable/compile.ts';
import { ruleFingerprint } from '../../src/dyntable/registry-rules.ts';
import type { RuleSpec } from '../../src/dyntable/rules.ts';
import { parseManifest } from '../../src/payload/guest-manifest.ts';
import { validManifest } from '../payload/guest-manifest-fixture.ts';
import { fakeHost } from './helpers.ts';

const home = '/home/me';
const host = fakeHost({
  home,
  dirs: [
    '/',
    home,
    `${home}/Documents`,
    `${home}/Documents/Work`,
    '/tmp/marker',
    '/srv/data',
    '/proc',
    '/proc/1',
    '/sys',
    '/media/me/STICK',
    '/mnt/chroot/proc',
  ],
  knownFolders: { folders: { Documents: { id: 'Documents', hostPath: `${home}/Documents`, how: 'test' } }, notes: [] },
  stickRoot: '/media/me/STICK',
});
const registryRule = (r: Partial<RuleSpec> & Pick<RuleSpec, 'name' | 'table' | 'guestPath'>): RuleSpec => ({
  origin: 'registry',
  source: `registry Tables\\Rules\\${r.name}`,
  ...r,
});

describe('dyntable compile: rules that need confirmation', () => {
  it('a registry FET rule waits for confirmation, even inside a known folder; the known folder itself still applies', () => {
    const table = compileTable(host, [
      ...builtinRules(),
      registryRule({ name: 'Wide', table: 'FET', guestPath: '/host/wide', hostPath: '/' }),
      registryRule({ name: 'Marker', table: 'FET', guestPath: '/host/marker', hostPath: '/tmp/marker', mode: 'readonly' }),
      registryRule({ name: 'Work', table: 'FET', guestPath: '/host/Documents', hostPath: '{Documents}/Work' }),
      registryRule({ name: 'Scratch', table: 'FIT', guestPath: '/host/scratch' }),
    ]);
    assert.deepEqual(
      table.entries.map((e) => e.id),
      ['builtin:Documents', 'registry:Scratch'],
    );
    assert.deepEqual(
      table.waiting.map((w) => [w.id, w.hostPath, w.why]),
      [
        ['registry:Wide', '/', 'a FET rule from the guest registry, outside every known folder'],
        ['registry:Marker', '/tmp/marker', 'a FET rule from the guest registry, outside every known folder'],
        ['registry:Work', `${home}/Documents/Work`, 'a FET rule from the guest registry'],
      ],
    );
    const wide = table.waiting[0]!;
    assert.equal(wide.fingerprint, ruleFingerprint({ table: 'FET', guestPath: '/host/wide', hostPath: '/' }));
    // What it would expose: everything, except what is never served.
    assert.match(
      wide.exposes,
      /^the host folder \/ and everything in it, copy-on-write, except \/media\/me\/STICK, \/proc, \/sys, \/dev, \/run, .*which are never served$/,
    );
    assert.match(table.waiting[1]!.exposes, /^the host folder \/tmp\/marker and everything in it, read-only$/);
  });

  it('a manifest rule outside every known folder waits; inside one it applies; confirmed it applies', () => {
    const manifest = parseManifest(
      JSON.stringify({
        ...validManifest,
        tables: [
          { name: 'Data', table: 'FET', guestPath: '/host/data', hostPath: '/srv/data' },
          { name: 'Work', table: 'FET', guestPath: '/host/work', hostPath: '{Documents}/Work', mode: 'readonly' },
          { name: 'Home', table: 'FET', guestPath: '/host/home', hostPath: '~' },
        ],
      }),
      'guest.json',
    );
    const rules = manifestRules(manifest, 'payload/default/guest.json');
    const table = compileTable(host, rules);
    assert.deepEqual(
      table.entries.map((e) => e.id),
      ['manifest:Work'],
    );
    assert.deepEqual(
      table.waiting.map((w) => [w.id, w.why]),
      [
        ['manifest:Data', 'a rule for a host folder outside every known folder'],
        ['manifest:Home', 'a rule for a host folder outside every known folder'],
      ],
    );
    const confirmed = compileTable(
      host,
      rules.map((r) => (r.name === 'Data' ? { ...r, confirmed: true } : r)),
    );
    assert.deepEqual(
      confirmed.entries.map((e) => [e.id, e.origin]),
      [
        ['manifest:Data', 'manifest'],
        ['manifest:Work', 'manifest'],
      ],
    );
  });

  it('a confirmed rule applies; the person confirmed it', () => {
    const table = compileTable(host, [registryRule({ name: 'Marker', table: 'FET', guestPath: '/host/marker', hostPath: '/tmp/marker', origin: 'confirmed' })]);
    assert.deepEqual(
      table.entries.map((e) => e.id),
      ['confirmed:Marker'],
    );
    assert.deepEqual(table.waiting, []);
  });

  it('pseudo file systems and the stick never compile, confirmed or not, and are not offered for confirmation', () => {
    for (const origin of ['registry', 'confirmed'] as const) {
      const table = compileTable(host, [
        registryRule({ name: 'Proc', table: 'FET', guestPath: '/host/proc', hostPath: '/proc/1', origin }),
        registryRule({ name: 'Sys', table: 'FET', guestPath: '/host/sys', hostPath: '/sys', origin }),
        registryRule({ name: 'Stick', table: 'FET', guestPath: '/host/stick', hostPath: '/media/me/STICK', origin }),
      ]);
      assert.deepEqual(table.entries, [], origin);
      assert.deepEqual(table.waiting, [], origin);
      assert.deepEqual(
        table.skipped.map((s) => s.id.replace(/^\w+:/, '')),
        ['Proc', 'Sys', 'Stick'],
      );
      for (const s of table.skipped) assert.match(s.reason, /no rule can expose it/);
    }
  });

  it('a pseudo file system mounted elsewhere (from mountinfo) is refused too', () => {
    const withMount = { ...host, pseudoMounts: ['/proc', '/mnt/chroot/proc'] };
    const table = compileTable(withMount, [registryRule({ name: 'P', table: 'FET', guestPath: '/host/p', hostPath: '/mnt/chroot/proc', origin: 'confirmed' })]);
    assert.deepEqual(table.entries, []);
    assert.match(table.skipped[0]!.reason, /pseudo file system mounted here.*no rule can expose it/);
    assert.ok(table.exclusions.some((e) => e.hostPath === '/mnt/chroot/proc' && !e.exposable));
  });

  it('Windows device and named-pipe namespaces are refused before the host is asked', () => {
    let asked = 0;
    const win = fakeHost({ os: 'windows', dirs: ['C:\\Data'] });
    const probe = { kind: (p: string) => (asked++, win.fs.kind(p)), realpath: (p: string) => win.fs.realpath(p) };
    const winHost = { ...win, fs: probe };
    const paths = [
      '\\\\.\\PhysicalDrive0',
      '\\\\?\\GLOBALROOT\\Device\\HarddiskVolumeShadowCopy1',
      '\\\\.\\pipe\\secrets',
      '//./pipe/x',
      '\\\\server\\pipe\\x',
      '\\??\\C:\\x',
      'C:\\Data\\CON',
      'C:\\Data\\nul.txt',
      'C:\\Data:stream',
    ];
    const table = compileTable(
      winHost,
      paths.map((hostPath, i) => registryRule({ name: `D${i}`, table: 'FET', guestPath: `/host/d${i}`, hostPath, origin: 'confirmed' })),
    );
    assert.deepEqual(table.entries, []);
    assert.equal(table.skipped.length, paths.length);
    for (const s of table.skipped) assert.match(s.reason, /(device|named-pipe|data stream).*no rule can expose it/, s.reason);
    assert.equal(asked, 0, 'the host file system is not asked about a device path');
    // The system drive's page and hibernation files are never served either.
    assert.ok(compileTable(winHost, []).exclusions.some((e) => e.hostPath === 'C:\\hiberfil.sys' && !e.exposable));
  });
});
