import assert from 'node:assert/strict';
import { linkSync, lstatSync, mkdirSync, readdirSync, renameSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync, chmodSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { compileTable } from '../../src/dyntable/compile.ts';
import { NamespaceBackend } from '../../src/dyntable/namespace-backend.ts';
import {
  AT_REMOVEDIR,
  Errno,
  type NinepHandle,
  OpenFlags,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  SetattrMask,
  type SetattrRequest,
} from '../../src/ninep/backend.ts';
import type { CompiledTable, RuleSpec } from '../../src/dyntable/rules.ts';
import { liveHost, removeDir, snapshotTree, tempDir } from './helpers.ts';

// Rules the person confirmed: a registry FET rule applies only then.
const rule = (r: Partial<RuleSpec> & Pick<RuleSpec, 'name' | 'table' | 'guestPath'>): RuleSpec => ({ origin: 'confirmed', source: 'test', ...r });

const setattr = (r: Partial<SetattrRequest> & { valid: number }): SetattrRequest => ({
  mode: 0,
  uid: 0,
  gid: 0,
  size: 0,
  atimeSec: 0,
  atimeNsec: 0,
  mtimeSec: 0,
  mtimeNsec: 0,
  ...r,
});

async function readAll(handle: NinepHandle): Promise<string> {
  const chunks: Buffer[] = [];
  let position = 0;
  for (;;) {
    const buf = Buffer.alloc(65536);
    const n = await handle.read(buf, position);
    if (n === 0) break;
    chunks.push(buf.subarray(0, n));
    position += n;
  }
  return Buffer.concat(chunks).toString();
}

async function readFileVia(backend: NamespaceBackend, path: string): Promise<string> {
  const h = await backend.open(path, OpenFlags.RDONLY);
  try {
    return await readAll(h);
  } finally {
    await h.close();
  }
}

async function writeFileVia(backend: NamespaceBackend, path: string, text: string, flags = OpenFlags.RDWR): Promise<void> {
  const h = await backend.open(path, flags);
  try {
    await h.write(Buffer.from(text), 0);
  } finally {
    await h.close();
  }
}

async function list(backend: NamespaceBackend, path: string): Promise<string[]> {
  const h = await backend.open(path, OpenFlags.RDONLY);
  try {
    const out: string[] = [];
    let offset = 0;
    for (;;) {
      const entries = await h.readdir(offset, 100);
      if (entries.length === 0) break;
      out.push(...entries.map((e) => e.name));
      offset = entries.at(-1)!.offset;
    }
    // A listing streams (reserved names, the upper store, the host folder): its order is not sorted.
    return out.sort();
  } finally {
    await h.close();
  }
}

async function errnoOf(promise: Promise<unknown>): Promise<number | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return (error as { errno?: number }).errno ?? -1;
  }
}

// Every behaviour twice: with plain stores, and sealed at rest as a session opens them.
for (const sealed of [false, true])
  describe(`dyntable NamespaceBackend${sealed ? ' (sealed at rest)' : ''}`, function () {
    let base: string;
    let home: string;
    let outside: string;
    let filesDir: string;
    let upperDir: string;
    let backend: NamespaceBackend | undefined;
    const atRestKey = randomBytes(32);

    beforeEach(() => {
      base = tempDir();
      home = join(base, 'home', 'me');
      outside = join(base, 'outside');
      filesDir = join(base, 'stick', 'users', 'me', 'files');
      upperDir = join(base, 'stick', 'users', 'me', 'upper');
      const docs = join(home, 'Documents');
      mkdirSync(join(docs, 'sub', 'deep'), { recursive: true });
      mkdirSync(join(docs, 'emptydir'));
      writeFileSync(join(docs, 'a.txt'), 'alpha\n');
      writeFileSync(join(docs, 'b.sh'), '#!/bin/sh\necho b\n');
      chmodSync(join(docs, 'b.sh'), 0o755);
      writeFileSync(join(docs, 'sub', 'c.txt'), 'gamma\n');
      writeFileSync(join(docs, 'sub', 'deep', 'd.txt'), 'delta delta delta\n');
      symlinkSync('a.txt', join(docs, 'link-to-a'));
      // Times in the past, so a write that touched them would show.
      for (const p of ['a.txt', 'b.sh', 'sub/c.txt', 'sub/deep/d.txt', 'sub/deep', 'sub', 'emptydir', '.'])
        utimesSync(join(docs, p), new Date('2020-01-02T03:04:05Z'), new Date('2020-01-02T03:04:05Z'));
      mkdirSync(outside, { recursive: true });
      writeFileSync(join(outside, 'secret.txt'), 'outside secret\n');
    });

    afterEach(async () => {
      await backend?.close();
      backend = undefined;
      removeDir(base);
    });

    function table(rules: RuleSpec[]): CompiledTable {
      const t = compileTable(liveHost(home, { stickRoot: join(base, 'stick') }), rules);
      assert.deepEqual(t.skipped, [], JSON.stringify(t.skipped));
      return t;
    }

    const docsRule = (mode: 'cow' | 'readonly' = 'cow') =>
      rule({ name: 'Documents', table: 'FET', guestPath: '/host/Documents', hostPath: '~/Documents', mode });

    async function openBackend(t: CompiledTable): Promise<NamespaceBackend> {
      backend = await NamespaceBackend.open({ table: t, filesDir, upperDir, ...(sealed ? { atRestKey } : {}) });
      return backend;
    }

    it('reads host files through a FET entry; the namespace root and /host-level paths are virtual', async () => {
      const b = await openBackend(table([docsRule()]));
      assert.deepEqual(await list(b, '/'), ['Documents']);
      assert.deepEqual(await list(b, '/Documents'), ['a.txt', 'b.sh', 'emptydir', 'link-to-a', 'sub']);
      assert.equal(await readFileVia(b, '/Documents/sub/deep/d.txt'), 'delta delta delta\n');
      const attr = await b.getattr('/Documents/b.sh');
      assert.equal(attr.mode, S_IFREG | 0o755);
      assert.equal(attr.mtimeSec, Date.parse('2020-01-02T03:04:05Z') / 1000);
      assert.equal((await b.getattr('/Documents/link-to-a')).mode & S_IFMT, S_IFLNK);
      assert.equal(await b.readlink('/Documents/link-to-a'), 'a.txt');
      assert.equal(await errnoOf(b.open('/Documents/link-to-a', OpenFlags.RDONLY)), Errno.ELOOP);
      assert.equal((await b.getattr('/')).mode, S_IFDIR | 0o555);
      assert.equal(await errnoOf(b.mkdir('/', 'new', 0o755, 0)), Errno.EROFS);
      assert.equal(await errnoOf(b.getattr('/Nope')), Errno.ENOENT);
      assert.equal(await errnoOf(b.unlink('/', 'Documents', AT_REMOVEDIR)), Errno.EROFS);
    });

    it('an empty table (a host with none of the known folders) still has its root: the guest mounts an empty folder', async () => {
      const b = await openBackend(compileTable(liveHost(home, { stickRoot: join(base, 'stick') }), []));
      assert.equal((await b.getattr('/')).mode, S_IFDIR | 0o555);
      assert.deepEqual(await list(b, '/'), []);
      assert.equal(await errnoOf(b.getattr('/Documents')), Errno.ENOENT);
    });

    it('lands every change in upper/: the host tree stays byte-identical (content, mode, mtime) while the guest sees the changes', async () => {
      const before = snapshotTree(home);
      const b = await openBackend(table([docsRule()]));
      // write (copy-up), append
      await writeFileVia(b, '/Documents/a.txt', 'ALPHA');
      const ap = await b.open('/Documents/sub/c.txt', OpenFlags.WRONLY | OpenFlags.APPEND);
      await ap.write(Buffer.from('more\n'), 0);
      await ap.close();
      // rename, delete, chmod, truncate, utimes, chown
      await b.rename('/Documents', 'b.sh', '/Documents/sub', 'b-renamed.sh');
      await b.unlink('/Documents/sub/deep', 'd.txt', 0);
      await b.setattr('/Documents/a.txt', setattr({ valid: SetattrMask.MODE, mode: 0o600 }));
      await b.setattr('/Documents/sub/c.txt', setattr({ valid: SetattrMask.SIZE, size: 3 }));
      await b.setattr('/Documents/emptydir', setattr({ valid: SetattrMask.MTIME | SetattrMask.MTIME_SET, mtimeSec: 1_000_000_000, mtimeNsec: 5 }));
      await b.setattr('/Documents/link-to-a', setattr({ valid: SetattrMask.UID | SetattrMask.GID, uid: 4242, gid: 4343 }));
      // create, mkdir, symlink, hard link, mknod
      const created = await b.create('/Documents/sub/deep', 'new.txt', OpenFlags.RDWR, 0o640, 100);
      await created.write(Buffer.from('brand new'), 0);
      assert.equal((await created.getattr()).size, 9);
      await created.close();
      await b.mkdir('/Documents', 'newdir', 0o700, 0);
      await b.symlink('/Documents/newdir', 'escape', '../../../../outside/secret.txt', 0);
      await b.link('/Documents/sub/b-renamed.sh', '/Documents', 'hardlink.sh');
      await b.mknod('/Documents/newdir', 'fifo', S_IFIFO | 0o600, 0, 0, 0);

      // The guest's view.
      assert.equal(await readFileVia(b, '/Documents/a.txt'), 'ALPHA\n');
      assert.equal((await b.getattr('/Documents/a.txt')).mode, S_IFREG | 0o600);
      assert.equal(await readFileVia(b, '/Documents/sub/c.txt'), 'gam');
      assert.equal(await readFileVia(b, '/Documents/sub/b-renamed.sh'), '#!/bin/sh\necho b\n');
      assert.equal((await b.getattr('/Documents/sub/b-renamed.sh')).mode, S_IFREG | 0o755, 'copy-up keeps the mode');
      assert.equal((await b.getattr('/Documents/sub/b-renamed.sh')).mtimeSec, Date.parse('2020-01-02T03:04:05Z') / 1000, 'copy-up keeps the mtime');
      assert.equal((await b.getattr('/Documents/sub/b-renamed.sh')).nlink, 2);
      assert.equal(await readFileVia(b, '/Documents/hardlink.sh'), '#!/bin/sh\necho b\n');
      assert.equal((await b.getattr('/Documents/hardlink.sh')).qid.path, (await b.getattr('/Documents/sub/b-renamed.sh')).qid.path);
      assert.equal(await errnoOf(b.getattr('/Documents/b.sh')), Errno.ENOENT);
      assert.equal(await errnoOf(b.getattr('/Documents/sub/deep/d.txt')), Errno.ENOENT);
      assert.deepEqual(await list(b, '/Documents/sub/deep'), ['new.txt']);
      assert.deepEqual(await list(b, '/Documents'), ['a.txt', 'emptydir', 'hardlink.sh', 'link-to-a', 'newdir', 'sub']);
      assert.deepEqual(await list(b, '/Documents/newdir'), ['escape', 'fifo']);
      assert.equal(await b.readlink('/Documents/newdir/escape'), '../../../../outside/secret.txt');
      assert.equal((await b.getattr('/Documents/newdir/fifo')).mode, S_IFIFO | 0o600);
      const empty = await b.getattr('/Documents/emptydir');
      assert.deepEqual([empty.mtimeSec, empty.mtimeNsec], [1_000_000_000, 5]);
      const link = await b.getattr('/Documents/link-to-a');
      assert.deepEqual([link.uid, link.gid, link.mode & S_IFMT], [4242, 4343, S_IFLNK]);
      assert.equal((await b.getattr('/Documents/sub/deep/new.txt')).gid, 100);
      const sub = await b.getattr('/Documents/sub');
      assert.ok(sub.mtimeSec > Date.parse('2020-01-02T03:04:05Z') / 1000, 'a changed folder gets a new mtime');

      // The host's.
      await b.close();
      backend = undefined;
      assert.deepEqual(snapshotTree(home), before);
      assert.ok(readdirSync(join(upperDir, 'data')).length > 0);
    });

    it('whiteouts hide deleted host files and folders; rmdir + mkdir gives an opaque (empty) folder', async () => {
      const before = snapshotTree(home);
      const b = await openBackend(table([docsRule()]));
      assert.equal(await errnoOf(b.unlink('/Documents', 'sub', AT_REMOVEDIR)), Errno.ENOTEMPTY);
      assert.equal(await errnoOf(b.unlink('/Documents', 'sub', 0)), Errno.EISDIR);
      assert.equal(await errnoOf(b.unlink('/Documents', 'a.txt', AT_REMOVEDIR)), Errno.ENOTDIR);
      await b.unlink('/Documents/sub/deep', 'd.txt', 0);
      await b.unlink('/Documents/sub', 'deep', AT_REMOVEDIR);
      await b.unlink('/Documents/sub', 'c.txt', 0);
      await b.unlink('/Documents', 'sub', AT_REMOVEDIR);
      assert.deepEqual(await list(b, '/Documents'), ['a.txt', 'b.sh', 'emptydir', 'link-to-a']);
      await b.mkdir('/Documents', 'sub', 0o755, 0);
      assert.deepEqual(await list(b, '/Documents/sub'), []);
      assert.equal(await errnoOf(b.getattr('/Documents/sub/c.txt')), Errno.ENOENT);
      // A file deleted and created again is new, not the host's.
      await b.unlink('/Documents', 'a.txt', 0);
      const h = await b.create('/Documents', 'a.txt', OpenFlags.WRONLY, 0o644, 0);
      await h.close();
      assert.equal(await readFileVia(b, '/Documents/a.txt'), '');
      assert.equal(await errnoOf(b.create('/Documents', 'a.txt', OpenFlags.WRONLY, 0o644, 0)), Errno.EEXIST);
      await b.close();
      backend = undefined;
      assert.deepEqual(snapshotTree(home), before);
    });

    it('renames host folders (by redirect) and files, replacing targets as rename(2) does', async () => {
      const before = snapshotTree(home);
      const b = await openBackend(table([docsRule()]));
      await b.rename('/Documents', 'sub', '/Documents', 'moved');
      assert.deepEqual(await list(b, '/Documents/moved'), ['c.txt', 'deep']);
      assert.equal(await readFileVia(b, '/Documents/moved/deep/d.txt'), 'delta delta delta\n');
      assert.equal(await errnoOf(b.getattr('/Documents/sub')), Errno.ENOENT);
      // Into another host folder, then back under the old name.
      await b.rename('/Documents/moved', 'deep', '/Documents/emptydir', 'deeper');
      assert.equal(await readFileVia(b, '/Documents/emptydir/deeper/d.txt'), 'delta delta delta\n');
      await b.rename('/Documents', 'moved', '/Documents', 'sub');
      assert.deepEqual(await list(b, '/Documents/sub'), ['c.txt']);
      // A file over a file; a folder over an empty folder; refusals.
      await b.rename('/Documents', 'a.txt', '/Documents/sub', 'c.txt');
      assert.equal(await readFileVia(b, '/Documents/sub/c.txt'), 'alpha\n');
      assert.equal(await errnoOf(b.rename('/Documents', 'sub', '/Documents', 'b.sh')), Errno.ENOTDIR);
      assert.equal(await errnoOf(b.rename('/Documents', 'b.sh', '/Documents', 'sub')), Errno.EISDIR);
      assert.equal(await errnoOf(b.rename('/Documents', 'sub', '/Documents/sub', 'x')), Errno.EINVAL);
      await b.mkdir('/Documents', 'target', 0o755, 0);
      await b.rename('/Documents/emptydir', 'deeper', '/Documents', 'target');
      assert.deepEqual(await list(b, '/Documents/target'), ['d.txt']);
      assert.deepEqual(await list(b, '/Documents'), ['b.sh', 'emptydir', 'link-to-a', 'sub', 'target']);
      await b.close();
      backend = undefined;
      assert.deepEqual(snapshotTree(home), before);
    });

    it('moves files between two copy-on-write entries; host folders only within one', async () => {
      mkdirSync(join(home, 'Downloads'));
      const before = snapshotTree(home);
      const b = await openBackend(table([docsRule(), rule({ name: 'Downloads', table: 'FET', guestPath: '/host/Downloads', hostPath: '~/Downloads' })]));
      await b.rename('/Documents', 'a.txt', '/Downloads', 'a.txt');
      assert.equal(await readFileVia(b, '/Downloads/a.txt'), 'alpha\n');
      assert.equal(await errnoOf(b.getattr('/Documents/a.txt')), Errno.ENOENT);
      assert.equal(await errnoOf(b.rename('/Documents', 'sub', '/Downloads', 'sub')), Errno.EXDEV);
      await b.mkdir('/Documents', 'mine', 0o755, 0);
      await b.symlink('/Documents/mine', 'l', 'x', 0);
      await b.rename('/Documents', 'mine', '/Downloads', 'mine');
      assert.deepEqual(await list(b, '/Downloads'), ['a.txt', 'mine']);
      assert.equal(await b.readlink('/Downloads/mine/l'), 'x');
      // A renamed host folder emptied and removed; its old name made again is new and empty.
      await b.rename('/Documents', 'sub', '/Documents', 'moved');
      await b.unlink('/Documents/moved/deep', 'd.txt', 0);
      await b.unlink('/Documents/moved', 'deep', AT_REMOVEDIR);
      await b.unlink('/Documents/moved', 'c.txt', 0);
      await b.unlink('/Documents', 'moved', AT_REMOVEDIR);
      await b.mkdir('/Documents', 'sub', 0o755, 0);
      assert.deepEqual(await list(b, '/Documents/sub'), []);
      assert.deepEqual(await list(b, '/Documents'), ['b.sh', 'emptydir', 'link-to-a', 'sub']);
      await b.close();
      backend = undefined;
      assert.deepEqual(snapshotTree(home), before);
    });

    it('keeps the guest view across a new backend instance (a reboot)', async () => {
      const before = snapshotTree(home);
      let b = await openBackend(table([docsRule()]));
      await writeFileVia(b, '/Documents/a.txt', 'rebooted');
      await b.unlink('/Documents/sub', 'c.txt', 0);
      await b.rename('/Documents', 'sub', '/Documents', 'renamed');
      await b.symlink('/Documents', 'sl', 'renamed/deep', 0);
      await b.setattr('/Documents/b.sh', setattr({ valid: SetattrMask.MODE, mode: 0o700 }));
      const h = await b.create('/Documents/renamed', 'kept.txt', OpenFlags.RDWR, 0o600, 0);
      await h.write(Buffer.from('kept'), 0);
      await h.close();
      const view = async (x: NamespaceBackend) => ({
        top: await list(x, '/Documents'),
        renamed: await list(x, '/Documents/renamed'),
        a: await readFileVia(x, '/Documents/a.txt'),
        kept: await readFileVia(x, '/Documents/renamed/kept.txt'),
        mode: (await x.getattr('/Documents/b.sh')).mode,
        sl: await x.readlink('/Documents/sl'),
        aMtime: (await x.getattr('/Documents/a.txt')).mtimeSec,
      });
      const first = await view(b);
      await b.close();
      b = await openBackend(table([docsRule()]));
      assert.deepEqual(await view(b), first);
      assert.equal(first.a, 'rebooted');
      assert.deepEqual(first.renamed, ['deep', 'kept.txt']);
      await b.close();
      backend = undefined;
      assert.deepEqual(snapshotTree(home), before);
    });

    it('read-only entries refuse every change with EROFS', async () => {
      const b = await openBackend(table([docsRule('readonly')]));
      assert.equal(await readFileVia(b, '/Documents/a.txt'), 'alpha\n');
      assert.equal(await errnoOf(b.open('/Documents/a.txt', OpenFlags.RDWR)), Errno.EROFS);
      assert.equal(await errnoOf(b.open('/Documents/a.txt', OpenFlags.RDONLY | OpenFlags.TRUNC)), Errno.EROFS);
      assert.equal(await errnoOf(b.create('/Documents', 'n', OpenFlags.RDWR, 0o644, 0)), Errno.EROFS);
      assert.equal(await errnoOf(b.mkdir('/Documents', 'n', 0o755, 0)), Errno.EROFS);
      assert.equal(await errnoOf(b.unlink('/Documents', 'a.txt', 0)), Errno.EROFS);
      assert.equal(await errnoOf(b.rename('/Documents', 'a.txt', '/Documents', 'z')), Errno.EROFS);
      assert.equal(await errnoOf(b.setattr('/Documents/a.txt', setattr({ valid: SetattrMask.MODE, mode: 0o777 }))), Errno.EROFS);
      assert.equal(await errnoOf(b.symlink('/Documents', 's', 'x', 0)), Errno.EROFS);
      assert.equal(await errnoOf(b.link('/Documents/a.txt', '/Documents', 'l')), Errno.EROFS);
      assert.equal((await b.statfs('/Documents')).bavail, 0);
    });

    it("serves the seed's example: WINDOWS\\TEMP from the stick, WINDOWS\\SYSTEM from the host", async () => {
      const win = join(home, 'WINDOWS');
      mkdirSync(join(win, 'SYSTEM'), { recursive: true });
      mkdirSync(join(win, 'TEMP'));
      writeFileSync(join(win, 'SYSTEM', 'x'), 'host system file');
      writeFileSync(join(win, 'TEMP', 'x'), 'host temp file (never shown)');
      const before = snapshotTree(home);
      const t = table([
        rule({ name: 'Windows', table: 'FET', guestPath: '\\host\\WINDOWS', hostPath: '~\\WINDOWS' }),
        rule({ name: 'Temp', table: 'FIT', guestPath: '\\host\\WINDOWS\\TEMP' }),
      ]);
      let b = await openBackend(t);
      assert.equal(await readFileVia(b, '/WINDOWS/SYSTEM/x'), 'host system file');
      assert.deepEqual(await list(b, '/WINDOWS/TEMP'), []);
      const h = await b.create('/WINDOWS/TEMP', 'x', OpenFlags.RDWR, 0o644, 0);
      await h.write(Buffer.from('stick temp file'), 0);
      await h.close();
      assert.equal(await readFileVia(b, '/WINDOWS/TEMP/x'), 'stick temp file');
      assert.equal(await errnoOf(b.unlink('/WINDOWS', 'TEMP', AT_REMOVEDIR)), Errno.EBUSY);
      assert.equal(await errnoOf(b.rename('/WINDOWS', 'TEMP', '/WINDOWS', 'T2')), Errno.EBUSY);
      assert.equal(await errnoOf(b.rename('/WINDOWS/TEMP', 'x', '/WINDOWS/SYSTEM', 'x2')), Errno.EXDEV);
      assert.equal(await errnoOf(b.link('/WINDOWS/TEMP/x', '/WINDOWS', 'x3')), Errno.EXDEV);
      assert.deepEqual(await list(b, '/WINDOWS'), ['SYSTEM', 'TEMP']);
      await b.close();
      b = await openBackend(t);
      assert.equal(await readFileVia(b, '/WINDOWS/TEMP/x'), 'stick temp file');
      await b.close();
      backend = undefined;
      assert.deepEqual(snapshotTree(home), before);
      // The stick's copy is not a host file under any name.
      assert.equal(lstatSync(join(filesDir, 'layer.sqlite')).isFile(), true);
    });

    it('copies sparse host files up without filling the holes', async () => {
      const big = join(home, 'Documents', 'sparse.img');
      writeFileSync(big, 'head');
      truncateSync(big, 64 * 1024 * 1024);
      const b = await openBackend(table([docsRule()]));
      await b.setattr('/Documents/sparse.img', setattr({ valid: SetattrMask.MODE, mode: 0o600 }));
      const attr = await b.getattr('/Documents/sparse.img');
      assert.equal(attr.size, 64 * 1024 * 1024);
      assert.ok(attr.blocks * 512 < 4 * 1024 * 1024, `copy-up allocated ${attr.blocks * 512} bytes`);
      const h = await b.open('/Documents/sparse.img', OpenFlags.RDONLY);
      const buf = Buffer.alloc(8);
      assert.equal(await h.read(buf, 0), 8);
      assert.deepEqual(buf, Buffer.from('head\0\0\0\0'));
      await h.close();
    });

    it('unlinked files stay readable through open handles', async () => {
      const b = await openBackend(table([docsRule()]));
      const h = await b.create('/Documents', 'tmp', OpenFlags.RDWR, 0o600, 0);
      await h.write(Buffer.from('still here'), 0);
      await b.unlink('/Documents', 'tmp', 0);
      assert.equal(await errnoOf(b.getattr('/Documents/tmp')), Errno.ENOENT);
      assert.equal(await readAll(h), 'still here');
      await h.close();
    });

    describe('confinement', () => {
      it('never follows symlinks out of a host folder', async () => {
        symlinkSync(outside, join(home, 'Documents', 'out-dir'));
        symlinkSync(join(outside, 'secret.txt'), join(home, 'Documents', 'out-file'));
        const b = await openBackend(table([docsRule()]));
        assert.equal((await b.getattr('/Documents/out-dir')).mode & S_IFMT, S_IFLNK);
        assert.equal(await b.readlink('/Documents/out-dir'), outside);
        assert.equal(await errnoOf(b.open('/Documents/out-file', OpenFlags.RDONLY)), Errno.ELOOP);
        assert.equal(await errnoOf(b.getattr('/Documents/out-dir/secret.txt')), Errno.ENOENT);
        assert.equal(await errnoOf(b.open('/Documents/out-dir/secret.txt', OpenFlags.RDONLY)), Errno.ENOENT);
        assert.equal(await errnoOf(b.open('/Documents/out-dir', OpenFlags.RDONLY)), Errno.ELOOP);
        // Writing "through" it copies the link itself up; the target is untouched.
        await b.setattr('/Documents/out-file', setattr({ valid: SetattrMask.MTIME }));
        assert.equal(await b.readlink('/Documents/out-file'), join(outside, 'secret.txt'));
        assert.equal(statSync(join(outside, 'secret.txt')).size, 15);
      });

      it('rejects .. chains and names the host would reinterpret', async () => {
        const b = await openBackend(table([docsRule()]));
        for (const path of [
          '/Documents/..',
          '/Documents/../..',
          '/Documents/../../outside/secret.txt',
          '/Documents/sub/../../../outside/secret.txt',
          '/Documents/./a.txt',
        ]) {
          assert.equal(await errnoOf(b.getattr(path)), Errno.ENOENT, path);
          assert.equal(await errnoOf(b.open(path, OpenFlags.RDONLY)), Errno.ENOENT, path);
        }
        assert.equal(await errnoOf(b.create('/Documents/../..', 'x', OpenFlags.RDWR, 0o644, 0)), Errno.ENOENT);
      });

      it('hides a host hard link to an excluded secret, and keeps guest hard links inside the namespace', async () => {
        mkdirSync(join(home, '.ssh'));
        writeFileSync(join(home, '.ssh', 'id_ed25519'), 'PRIVATE KEY');
        linkSync(join(home, '.ssh', 'id_ed25519'), join(home, 'Documents', 'innocent.txt'));
        writeFileSync(join(outside, 'plain.txt'), 'x');
        const b = await openBackend(table([docsRule()]));
        assert.equal(await errnoOf(b.getattr('/Documents/innocent.txt')), Errno.ENOENT);
        assert.equal(await errnoOf(b.open('/Documents/innocent.txt', OpenFlags.RDONLY)), Errno.ENOENT);
        assert.ok(!(await list(b, '/Documents')).includes('innocent.txt'));
        // The guest can only link names it can see; the new name lives in upper/.
        await b.link('/Documents/a.txt', '/Documents/sub', 'a-link');
        assert.equal(await readFileVia(b, '/Documents/sub/a-link'), 'alpha\n');
        assert.equal(lstatSync(join(home, 'Documents', 'a.txt')).nlink, 1);
      });

      it('lists a local folder without an lstat per name, until a secret gets another name on its device', async () => {
        mkdirSync(join(home, '.ssh'));
        writeFileSync(join(home, '.ssh', 'id_ed25519'), 'PRIVATE KEY');
        for (let i = 0; i < 50; i++) writeFileSync(join(home, 'Documents', `n${i}`), '');
        const b = await openBackend(table([docsRule()]));
        const names = await list(b, '/Documents');
        assert.equal(names.length, 55);
        // Types from the folder itself (d_type): no name was lstat'ed.
        assert.equal(b.listingCounters.lstats, 0);
        // Each entry keeps its number from one listing to the next, and no two share one.
        const qids = async () => {
          const h = await b.open('/Documents', OpenFlags.RDONLY);
          try {
            return new Map((await h.readdir(0, 1000)).map((e) => [e.name, `${e.qid.type}:${e.qid.path}:${e.type}`]));
          } finally {
            await h.close();
          }
        };
        const first = await qids();
        assert.deepEqual(await qids(), first);
        assert.equal(new Set(first.values()).size, first.size);
        assert.equal(first.get('sub')!.split(':')[0], '128');
        assert.equal(first.get('link-to-a')!.split(':')[0], '2');
        // The number a listing shows is the one stat gives (d_ino = st_ino).
        for (const name of ['a.txt', 'sub', 'link-to-a', 'n7'])
          assert.equal(first.get(name)!.split(':')[1], String((await b.getattr(`/Documents/${name}`)).qid.path), name);
        // A hard link to the secret made on the host during the session: from
        // the next second on the listing lstats regular files and hides it.
        linkSync(join(home, '.ssh', 'id_ed25519'), join(home, 'Documents', 'later.txt'));
        assert.equal(await errnoOf(b.getattr('/Documents/later.txt')), Errno.ENOENT);
        await new Promise((resolve) => setTimeout(resolve, 1100));
        assert.ok(!(await list(b, '/Documents')).includes('later.txt'));
        assert.ok(b.listingCounters.lstats >= 50);
      });

      it('does not follow a host folder swapped for a symlink after it was checked', async () => {
        const b = await openBackend(table([docsRule()]));
        assert.equal(await readFileVia(b, '/Documents/sub/c.txt'), 'gamma\n');
        assert.deepEqual(await list(b, '/Documents/sub'), ['c.txt', 'deep']);
        // Swap: the checked folder becomes a symlink to a tree with the same names.
        writeFileSync(join(outside, 'c.txt'), 'OUTSIDE');
        mkdirSync(join(outside, 'deep'));
        renameSync(join(home, 'Documents', 'sub'), join(base, 'sub-away'));
        symlinkSync(outside, join(home, 'Documents', 'sub'));
        const attempt = await b.open('/Documents/sub/c.txt', OpenFlags.RDONLY).then(
          async (h) => {
            const text = await readAll(h);
            await h.close();
            return text;
          },
          (error: { errno?: number }) => error.errno,
        );
        assert.notEqual(attempt, 'OUTSIDE');
        assert.equal(typeof attempt, 'number');
        assert.equal((await b.getattr('/Documents/sub')).mode & S_IFMT, S_IFLNK);
        assert.equal(await errnoOf(list(b, '/Documents/sub')), Errno.ELOOP);
        await new Promise((resolve) => setTimeout(resolve, 1100));
        assert.equal(await errnoOf(b.getattr('/Documents/sub/c.txt')), Errno.ENOENT);
        assert.equal(await errnoOf(b.setattr('/Documents/sub/c.txt', setattr({ valid: SetattrMask.MODE, mode: 0o600 }))), Errno.ENOENT);
        assert.equal(statSync(join(outside, 'c.txt')).mode & 0o777, 0o644);
      });
    });
  });
