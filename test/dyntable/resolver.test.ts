import assert from 'node:assert/strict';
import { builtinRules, compileTable, manifestRules } from '../../src/dyntable/compile.ts';
import { resolvePath } from '../../src/dyntable/resolver.ts';
import type { RuleSpec } from '../../src/dyntable/rules.ts';
import { parseManifest } from '../../src/payload/guest-manifest.ts';
import { validManifest } from '../payload/guest-manifest-fixture.ts';
import { fakeHost } from './helpers.ts';

// A registry FET rule applies only once the person confirmed it (origin
// `confirmed`, as the loader marks it); FIT rules need no confirmation.
const rule = (r: Partial<RuleSpec> & Pick<RuleSpec, 'name' | 'table' | 'guestPath'>): RuleSpec => ({
  origin: r.table === 'FET' ? 'confirmed' : 'registry',
  source: `registry Tables\\Rules\\${r.name}`,
  ...r,
});

describe('dyntable resolver', () => {
  describe("the seed's example", () => {
    // FIT WINDOWS\TEMP, FET WINDOWS: TEMP files from the stick, SYSTEM files from the host.
    const host = fakeHost({ os: 'windows', dirs: ['C:\\WINDOWS'] });
    const table = compileTable(host, [
      rule({ name: 'Windows', table: 'FET', guestPath: '\\host\\WINDOWS', hostPath: 'C:\\WINDOWS', origin: 'manifest', source: 'guest.json', confirmed: true }),
      rule({ name: 'WindowsTemp', table: 'FIT', guestPath: '\\host\\WINDOWS\\TEMP' }),
    ]);

    it('reads WINDOWS\\TEMP\\x from the stick', () => {
      const r = resolvePath(table, '\\host\\WINDOWS\\TEMP\\x');
      assert.equal(r.kind, 'entry');
      if (r.kind !== 'entry') return;
      assert.equal(r.entry.table, 'FIT');
      assert.equal(r.access, 'stick');
      assert.deepEqual(r.relative, ['x']);
      assert.equal(r.hostPath, undefined);
      assert.match(r.reason, /most specific of: FIT \/host\/WINDOWS\/TEMP .*FET \/host\/WINDOWS/);
    });

    it('reads WINDOWS\\SYSTEM\\x from the host', () => {
      const r = resolvePath(table, '/host/WINDOWS/SYSTEM/x');
      assert.equal(r.kind, 'entry');
      if (r.kind !== 'entry') return;
      assert.equal(r.entry.table, 'FET');
      assert.equal(r.access, 'cow');
      assert.equal(r.hostPath, 'C:\\WINDOWS\\SYSTEM\\x');
      assert.match(r.reason, /covered only by FET \/host\/WINDOWS/);
    });

    it('lists TEMP as a reserved child of WINDOWS and /host as a virtual folder', () => {
      const w = resolvePath(table, '/host/WINDOWS');
      assert.equal(w.kind, 'entry');
      if (w.kind === 'entry') assert.deepEqual(w.reservedChildren, ['TEMP']);
      const h = resolvePath(table, '/host');
      assert.equal(h.kind, 'virtual');
      if (h.kind === 'virtual') assert.deepEqual(h.children, ['WINDOWS']);
      const root = resolvePath(table, '/');
      assert.equal(root.kind, 'virtual');
      assert.equal(resolvePath(table, '/etc/passwd').kind, 'unmapped');
      assert.equal(resolvePath(table, 'relative/path').kind, 'unmapped');
      assert.equal(resolvePath(table, '/host/WINDOWS/../x').kind, 'unmapped');
    });

    it('is case-sensitive on the guest side (the guest is Linux)', () => {
      const r = resolvePath(table, '/host/WINDOWS/temp/x');
      assert.equal(r.kind === 'entry' && r.entry.table, 'FET');
    });

    it('is immutable', () => {
      assert.throws(() => (table.entries as unknown as unknown[]).push({}));
      assert.throws(() => {
        (table.entries[0] as { guestPath: string }).guestPath = '/x';
      });
    });
  });

  describe('precedence and conflicts', () => {
    const home = '/home/me';
    const host = fakeHost({
      home,
      dirs: [home, `${home}/Documents`, `${home}/Work`, `${home}/Other`, `${home}/Music`],
      knownFolders: {
        folders: { Documents: { id: 'Documents', hostPath: `${home}/Documents`, how: 'test' }, Music: { id: 'Music', hostPath: `${home}/Music`, how: 'test' } },
        notes: [],
      },
    });

    it('built-in known folders appear under /host/<Name>, missing ones are skipped', () => {
      const table = compileTable(host, builtinRules());
      assert.deepEqual(
        table.entries.map((e) => [e.guestPath, e.target.kind === 'host' ? e.target.hostPath : '', e.mode, e.origin]),
        [
          ['/host/Documents', `${home}/Documents`, 'cow', 'builtin'],
          ['/host/Music', `${home}/Music`, 'cow', 'builtin'],
        ],
      );
      assert.ok(table.skipped.some((s) => s.id === 'builtin:Pictures' && /no Pictures folder/.test(s.reason)));
      assert.deepEqual(table.problems, []);
    });

    it('a higher origin overrides a lower one for the same guest path', () => {
      const manifest = parseManifest(
        JSON.stringify({
          ...validManifest,
          tables: [{ name: 'Docs', table: 'FET', guestPath: '/host/Documents', hostPath: '{Documents}', mode: 'readonly' }],
        }),
        'guest.json',
      );
      const table = compileTable(host, [
        ...builtinRules(),
        ...manifestRules(manifest, 'payload/default/guest.json'),
        rule({ name: 'MyDocs', table: 'FET', guestPath: '/host/Documents', hostPath: '~/Work' }),
      ]);
      const docs = table.entries.find((e) => e.guestPath === '/host/Documents')!;
      assert.equal(docs.id, 'confirmed:MyDocs');
      assert.deepEqual(docs.overrides, ['builtin:Documents', 'manifest:Docs']);
      assert.ok(table.skipped.some((s) => s.id === 'manifest:Docs' && /overridden by confirmed:MyDocs/.test(s.reason)));
      const r = resolvePath(table, '/host/Documents/a.txt');
      assert.equal(r.kind === 'entry' && r.hostPath, `${home}/Work/a.txt`);
    });

    it('two rules of the same origin for one path conflict: neither applies, the next origin down does', () => {
      const table = compileTable(host, [
        ...builtinRules(),
        rule({ name: 'A', table: 'FET', guestPath: '/host/Documents', hostPath: '~/Work' }),
        rule({ name: 'B', table: 'FET', guestPath: '/host/Documents/', hostPath: '~/Other' }),
      ]);
      const conflict = table.problems.find((p) => p.severity === 'error');
      assert.ok(conflict);
      assert.deepEqual([...conflict.rules].sort(), ['confirmed:A', 'confirmed:B']);
      assert.match(conflict.message, /conflict/);
      const docs = table.entries.find((e) => e.guestPath === '/host/Documents')!;
      assert.equal(docs.id, 'builtin:Documents');
    });

    it('reports invalid rules and keeps going', () => {
      const table = compileTable(host, [
        rule({ name: 'Rel', table: 'FET', guestPath: 'host/x', hostPath: '~/Work' }),
        rule({ name: 'Climb', table: 'FET', guestPath: '/host/x/../y', hostPath: '~/Work' }),
        rule({ name: 'Outside', table: 'FIT', guestPath: '/etc' }),
        rule({ name: 'NoHost', table: 'FET', guestPath: '/host/n' }),
        rule({ name: 'Missing', table: 'FET', guestPath: '/host/m', hostPath: '~/nope' }),
        rule({ name: 'HostClimb', table: 'FET', guestPath: '/host/c', hostPath: '~/../other' }),
        rule({ name: 'Good', table: 'FET', guestPath: '/host/Work', hostPath: '~/Work', mode: 'readonly' }),
      ]);
      assert.deepEqual(
        table.entries.map((e) => e.id),
        ['confirmed:Good'],
      );
      assert.equal(table.skipped.length, 6);
      assert.equal(table.problems.length, 6);
      assert.ok(table.problems.some((p) => /outside the namespace/.test(p.message)));
      assert.ok(table.problems.some((p) => /does not exist/.test(p.message)));
      const r = resolvePath(table, '/host/Work/f');
      assert.equal(r.kind === 'entry' && r.access, 'readonly');
      assert.match(r.kind === 'entry' ? r.reason : '', /read-only/);
    });

    it('warns when the same host files appear at two unrelated guest paths', () => {
      const table = compileTable(host, [...builtinRules(), rule({ name: 'Home', table: 'FET', guestPath: '/host/home', hostPath: '~', mode: 'readonly' })]);
      assert.ok(table.problems.some((p) => p.severity === 'warning' && /same host files/.test(p.message)));
      // Nested the same way on both sides is fine.
      const nested = compileTable(host, [
        rule({ name: 'Home', table: 'FET', guestPath: '/host/home', hostPath: '~' }),
        rule({ name: 'Docs', table: 'FET', guestPath: '/host/home/Documents', hostPath: '~/Documents', mode: 'readonly' }),
      ]);
      assert.deepEqual(nested.problems, []);
    });

    it('a rule targeting an excluded folder is refused unless confirmed', () => {
      const withSsh = fakeHost({ home, dirs: [`${home}/.ssh`, `${home}`] });
      const plain = compileTable(withSsh, [
        rule({ name: 'Keys', table: 'FET', guestPath: '/host/keys', hostPath: '~/.ssh', mode: 'readonly', origin: 'registry' }),
      ]);
      assert.equal(plain.entries.length, 0);
      assert.deepEqual(
        plain.waiting.map((w) => [w.id, w.lifts]),
        [['registry:Keys', ['ssh']]],
      );
      assert.match(plain.waiting[0]!.exposes, /including what is excluded by default: SSH keys/);
      // A manifest rule inside a known folder but onto an exclusion is refused unless confirmed.
      // (A host whose Documents folder is the home itself.)
      const manifest = compileTable(
        fakeHost({ home, dirs: [home, `${home}/.ssh`], knownFolders: { folders: { Documents: { id: 'Documents', hostPath: home, how: 'test' } }, notes: [] } }),
        [rule({ name: 'Keys', table: 'FET', guestPath: '/host/keys', hostPath: '{Documents}/.ssh', origin: 'manifest' })],
      );
      assert.equal(manifest.entries.length, 0);
      assert.match(manifest.skipped[0]!.reason, /excluded: SSH keys .*only a rule confirmed/);
      const confirmed = compileTable(withSsh, [
        rule({ name: 'Keys', table: 'FET', guestPath: '/host/keys', hostPath: '~/.ssh', mode: 'readonly', origin: 'confirmed' }),
      ]);
      assert.equal(confirmed.entries.length, 1);
      assert.deepEqual(confirmed.entries[0]!.exposes, ['ssh']);
      // A confirmed rule for the whole home does not expose what is inside it.
      const homeRule = compileTable(withSsh, [rule({ name: 'Home', table: 'FET', guestPath: '/host/home', hostPath: '~', origin: 'confirmed' })]);
      assert.deepEqual(homeRule.entries[0]!.exposes, []);
      const r = resolvePath(homeRule, '/host/home/.ssh/id_ed25519');
      assert.ok(r.kind === 'entry' && r.excludedBy?.id === 'ssh');
      assert.match(r.kind === 'entry' ? r.reason : '', /^excluded because \/home\/me\/.ssh holds SSH keys/);
    });

    it('the stick itself can never be exposed', () => {
      const stickHost = fakeHost({ home, dirs: ['/media/me/STICK', '/media/me/STICK/users'], stickRoot: '/media/me/STICK' });
      const table = compileTable(stickHost, [
        rule({ name: 'Stick', table: 'FET', guestPath: '/host/stick', hostPath: '/media/me/STICK/users', origin: 'confirmed' }),
      ]);
      assert.equal(table.entries.length, 0);
      assert.match(table.skipped[0]!.reason, /no rule can expose it/);
    });
  });
});
