// Pseudo and device file systems are never served: not by a rule for them,
// not through a confirmed rule for `/` that contains them, not through a
// symlink. The backend part runs against this host's real /proc.
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileTable } from '../../src/dyntable/compile.ts';
import { NamespaceBackend } from '../../src/dyntable/namespace-backend.ts';
import { OpenFlags } from '../../src/ninep/backend.ts';
import { deviceNamespaceReason, pseudoFsExclusions, pseudoMountPoints } from '../../src/dyntable/pseudo-filesystems.ts';
import { resolvePath } from '../../src/dyntable/resolver.ts';
import type { RuleSpec } from '../../src/dyntable/rules.ts';
import { liveHost, removeDir, tempDir } from './helpers.ts';

async function errnoOf(promise: Promise<unknown>): Promise<number | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return (error as { errno?: number }).errno ?? -1;
  }
}

async function names(backend: NamespaceBackend, path: string): Promise<string[]> {
  const h = await backend.open(path, OpenFlags.RDONLY);
  const entries = await h.readdir(0, 100_000);
  await h.close();
  return entries.map((e) => e.name);
}

const confirmedRule = (r: Pick<RuleSpec, 'name' | 'guestPath' | 'hostPath'>): RuleSpec => ({
  table: 'FET',
  origin: 'confirmed',
  source: 'test',
  mode: 'readonly',
  ...r,
});

describe('dyntable pseudo file systems', function () {
  this.timeout(60_000);

  it('lists /proc, /sys, /dev, /run on Linux, devfs and swap on macOS, page files on Windows; none exposable', () => {
    const linux = pseudoFsExclusions({
      os: 'linux',
      pathStyle: 'posix',
      env: {},
      pseudoMounts: ['/proc', '/proc/sys/fs/binfmt_misc', '/sys/fs/cgroup', '/srv/jail/proc', '/'],
    });
    assert.deepEqual(
      linux.map((e) => e.hostPath),
      ['/proc', '/sys', '/dev', '/run', '/var/run', '/var/lock', '/srv/jail/proc'],
    );
    const mac = pseudoFsExclusions({ os: 'darwin', pathStyle: 'posix', env: {} }).map((e) => e.hostPath);
    for (const p of ['/dev', '/.vol', '/private/var/run', '/private/var/vm', '/System/Volumes/VM']) assert.ok(mac.includes(p), p);
    const win = pseudoFsExclusions({ os: 'windows', pathStyle: 'win32', env: { SystemDrive: 'D:' } }).map((e) => e.hostPath);
    assert.deepEqual(win, ['D:\\pagefile.sys', 'D:\\hiberfil.sys', 'D:\\swapfile.sys']);
    for (const list of [linux, pseudoFsExclusions({ os: 'darwin', pathStyle: 'posix', env: {} })]) for (const e of list) assert.equal(e.exposable, false);
  });

  it('finds pseudo file systems in mountinfo, escaped names included', () => {
    const text = [
      '22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw',
      '23 28 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw',
      '28 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
      '40 28 0:35 / /mnt/my\\040proc rw - proc proc rw',
      '41 28 0:36 / /tmp rw - tmpfs tmpfs rw',
      '42 28 0:37 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw',
      '',
    ].join('\n');
    assert.deepEqual(pseudoMountPoints(text), ['/proc', '/sys', '/mnt/my proc', '/sys/fs/cgroup']);
  });

  it('recognises Windows device and pipe namespaces, and leaves ordinary paths alone', () => {
    for (const p of [
      '\\\\.\\C:',
      '\\\\?\\GLOBALROOT\\Device\\Harddisk0',
      '\\\\.\\pipe\\x',
      '\\\\host\\PIPE\\x',
      '\\\\host\\mailslot\\x',
      '\\??\\C:\\',
      'C:\\x\\COM1',
      'C:\\x\\aux.txt',
      'C:\\x\\CONIN$',
      'C:\\x\\file:ads',
    ])
      assert.ok(deviceNamespaceReason(p, 'win32'), p);
    for (const p of ['C:\\Users\\me\\Documents', '\\\\server\\share\\folder', 'D:\\console\\com10x', 'C:\\'])
      assert.equal(deviceNamespaceReason(p, 'win32'), undefined, p);
    assert.equal(deviceNamespaceReason('/dev/sda', 'posix'), undefined, 'POSIX paths are the exclusions’ job');
  });

  describe('served from this host', () => {
    let base: string;
    let backend: NamespaceBackend | undefined;
    beforeEach(() => {
      base = tempDir('pocketvm-pseudo-');
    });
    afterEach(async () => {
      await backend?.close();
      backend = undefined;
      removeDir(base);
    });

    it('a confirmed rule for / serves no /proc, /sys, /dev or /run: /proc/self/mem and /proc/1/environ are unreachable', async () => {
      const home = join(base, 'home');
      mkdirSync(home);
      const table = compileTable(liveHost(home, { pseudoMounts: ['/proc', '/sys'] }), [
        confirmedRule({ name: 'Wide', guestPath: '/host/wide', hostPath: '/' }),
      ]);
      assert.deepEqual(
        table.entries.map((e) => e.id),
        ['confirmed:Wide'],
      );
      backend = await NamespaceBackend.open({ table, filesDir: join(base, 'files'), upperDir: join(base, 'upper') });
      const top = await names(backend, '/wide');
      assert.ok(top.includes('tmp') && top.includes('etc'), `the rest of / is there: ${top.join(' ')}`);
      for (const hidden of ['proc', 'sys', 'dev', 'run']) assert.ok(!top.includes(hidden), `${hidden} is not listed`);
      for (const path of [
        '/wide/proc/self/mem',
        '/wide/proc/1/environ',
        `/wide/proc/${process.pid}/environ`,
        '/wide/sys/kernel',
        '/wide/dev/null',
        '/wide/run',
      ]) {
        assert.equal(await errnoOf(backend.getattr(path)), 2, `${path}: ENOENT`);
        assert.equal(await errnoOf(backend.open(path, OpenFlags.RDONLY)), 2, `${path}: ENOENT on open`);
      }
      const explained = resolvePath(table, '/host/wide/proc/1/environ');
      assert.ok(explained.kind === 'entry' && explained.excludedBy?.category === 'pseudo-fs');
      assert.match(explained.kind === 'entry' ? explained.reason : '', /no rule can expose it/);
    });

    it('a symlink to /proc, as a rule root or inside a served folder, leads nowhere', async () => {
      const home = join(base, 'home');
      const docs = join(home, 'Documents');
      mkdirSync(docs, { recursive: true });
      writeFileSync(join(docs, 'ok.txt'), 'ok');
      symlinkSync('/proc', join(home, 'proc-link'));
      symlinkSync('/proc/self', join(docs, 'self'));
      const host = liveHost(home);
      const direct = compileTable(host, [confirmedRule({ name: 'P', guestPath: '/host/p', hostPath: join(home, 'proc-link') })]);
      assert.deepEqual(direct.entries, []);
      assert.match(direct.skipped[0]!.reason, /through the symlink to \/proc.*no rule can expose it/);
      const table = compileTable(host, [confirmedRule({ name: 'Docs', guestPath: '/host/docs', hostPath: docs })]);
      backend = await NamespaceBackend.open({ table, filesDir: join(base, 'files'), upperDir: join(base, 'upper') });
      // The symlink is served as a symlink (the guest resolves it in its own tree), never followed on the host.
      const through = await errnoOf(backend.open('/docs/self/environ', OpenFlags.RDONLY));
      assert.ok(through === 2 || through === 20 || through === 40, `the host never follows it (errno ${through})`);
      assert.equal(await errnoOf(backend.open('/docs/self', OpenFlags.RDONLY)), 40, 'ELOOP');
    });
  });
});
