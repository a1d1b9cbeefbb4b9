// Every supported 9P2000.L message against LocalDirBackend on a temp dir,
// through the real server over an in-process duplex pair.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { duplexPair } from 'node:stream';
import { serveNinep } from '../../src/ninep/server.ts';
import { FIRST_LISTING_BATCH, LISTING_BATCH } from './local-backend.ts';
import { Errno, OpenFlags, QidType, SetattrMask } from '../../src/ninep/backend.ts';
import { NOFID, NOTAG, decodeDirents, encode } from '../../src/ninep/codec.ts';
import { NinepClient, NinepClientError } from './client.ts';
import { startHarness } from './harness.ts';
import type { Harness } from './harness.ts';

const O = OpenFlags;

async function rejectsErrno(p: Promise<unknown>, errno: number): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof NinepClientError, `expected a 9P error, got ${String(e)}`);
    assert.equal(e.errno, errno, `errno ${e.errno}, expected ${errno}`);
    return true;
  });
}

describe('ninep server over LocalDirBackend', function () {
  let tmp: string;
  let share: string;
  let outside: string;
  let h: Harness;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ninep-'));
    share = path.join(tmp, 'share');
    outside = path.join(tmp, 'outside');
    fs.mkdirSync(share);
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'secret'), 'top secret');
    fs.mkdirSync(path.join(share, 'docs'));
    fs.writeFileSync(path.join(share, 'docs', 'hello.txt'), 'hello world\n');
    h = await startHarness(share);
  });

  after(async () => {
    await h.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  describe('version and attach', () => {
    it('negotiates msize down to its cap and rejects tiny or unknown versions', async () => {
      const [a, b] = duplexPair();
      const server = serveNinep(a, h.backend, { maxMsize: 65536 });
      const c = new NinepClient(b);
      const r = await c.version(1 << 20);
      assert.equal(r.msize, 65536);
      assert.equal(r.version, '9P2000.L');
      await rejectsErrno(c.version(1000), Errno.EINVAL);
      const u = await c.call({ type: 'Tversion', msize: 8192, version: '9P2000.u' });
      assert.equal(u.version, 'unknown');
      // Before a successful version nothing else works.
      await rejectsErrno(c.attach(1), Errno.EPROTO);
      b.destroy();
      await server.closed;
    });

    it('attaches to a directory root and refuses a fid in use and Tauth', async () => {
      const q = await h.client.attach(2);
      assert.equal(q.type, QidType.DIR);
      await rejectsErrno(h.client.attach(2), Errno.EBADF);
      await rejectsErrno(h.client.call({ type: 'Tauth', afid: 9, uname: 'x', aname: '', nUname: 0 }), Errno.EOPNOTSUPP);
      await h.client.clunk(2);
    });
  });

  describe('walk', () => {
    it('walks, clones, and reports unknown fids as EBADF', async () => {
      const w = await h.client.walk(h.root, ['docs', 'hello.txt']);
      assert.equal(w.qids.length, 2);
      assert.equal(w.qids[0]!.type, QidType.DIR);
      assert.equal(w.qids[1]!.type, QidType.FILE);
      const clone = await h.client.walk(w.fid, []);
      assert.deepEqual((await h.client.getattr(clone.fid)).qid, w.qids[1]);
      await rejectsErrno(h.client.walk(4242, ['docs']), Errno.EBADF);
      await rejectsErrno(h.client.walk(h.root, ['docs'], w.fid), Errno.EBADF); // newfid in use
      await h.client.clunk(w.fid);
      await h.client.clunk(clone.fid);
      await rejectsErrno(h.client.clunk(w.fid), Errno.EBADF);
    });

    it('returns partial qids and creates no newfid when a later name fails', async () => {
      const newfid = h.client.fid();
      const r = await h.client.call({ type: 'Twalk', fid: h.root, newfid, wnames: ['docs', 'nope', 'x'] });
      assert.equal(r.wqids.length, 1);
      await rejectsErrno(h.client.getattr(newfid), Errno.EBADF);
      await rejectsErrno(h.client.walk(h.root, ['nope']), Errno.ENOENT);
      const p = await h.client.call({ type: 'Twalk', fid: h.root, newfid: h.client.fid(), wnames: ['docs', 'hello.txt', 'x'] });
      assert.equal(p.wqids.length, 2);
      const file = await h.client.walk(h.root, ['docs', 'hello.txt']);
      await rejectsErrno(h.client.walk(file.fid, ['x']), Errno.ENOTDIR);
      await h.client.clunk(file.fid);
    });

    it('refuses more than 16 names and invalid names', async () => {
      const names = Array.from({ length: 17 }, () => 'docs');
      await rejectsErrno(h.client.walk(h.root, names), Errno.E2BIG);
      await rejectsErrno(h.client.walk(h.root, ['a/b']), Errno.ENOENT);
      await rejectsErrno(h.client.walk(h.root, ['']), Errno.ENOENT);
    });
  });

  describe('files', () => {
    it('creates, writes, reads, getattrs and clunks a file', async () => {
      const fid = await h.client.create(h.root, ['docs'], 'new.txt', O.RDWR, 0o640);
      assert.equal(await h.client.write(fid, 0, Buffer.from('abcdef')), 6);
      assert.equal(await h.client.write(fid, 6, Buffer.from('ghij')), 4);
      assert.equal((await h.client.read(fid, 2, 5)).toString(), 'cdefg');
      const a = await h.client.getattr(fid);
      assert.equal(a.size, 10);
      assert.equal(a.mode, 0o100640);
      assert.equal(a.valid & 0x7ff, 0x7ff);
      await h.client.call({ type: 'Tfsync', fid, datasync: 0 });
      await h.client.clunk(fid);
      assert.equal(fs.readFileSync(path.join(share, 'docs', 'new.txt'), 'utf8'), 'abcdefghij');
      assert.equal(fs.statSync(path.join(share, 'docs', 'new.txt')).mode & 0o777, 0o640);
      // Exclusive create of an existing name.
      await rejectsErrno(h.client.create(h.root, ['docs'], 'new.txt', O.RDWR | O.CREATE | O.EXCL), Errno.EEXIST);
    });

    it('reads a file in chunks and refuses I/O on unopened fids', async () => {
      const data = Buffer.alloc(300_000);
      for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
      fs.writeFileSync(path.join(share, 'big.bin'), data);
      const fid = await h.client.open(h.root, ['big.bin'], O.RDONLY);
      assert.ok((await h.client.readAll(fid, 100_000)).equals(data));
      // count above msize is clamped, not refused.
      const r = await h.client.read(fid, 0, 0xffffffff);
      assert.equal(r.length, 300_000);
      await h.client.clunk(fid);
      const w = await h.client.walk(h.root, ['big.bin']);
      await rejectsErrno(h.client.read(w.fid, 0, 10), Errno.EBADF);
      await rejectsErrno(h.client.write(w.fid, 0, Buffer.from('x')), Errno.EBADF);
      await h.client.call({ type: 'Tlopen', fid: w.fid, flags: O.RDONLY });
      await rejectsErrno(h.client.call({ type: 'Tlopen', fid: w.fid, flags: O.RDONLY }), Errno.EINVAL);
      await rejectsErrno(h.client.write(w.fid, 0, Buffer.from('x')), Errno.EBADF); // read-only open
      await h.client.clunk(w.fid);
    });

    it('truncates with setattr and sets mode and times', async () => {
      const fid = await h.client.create(h.root, [], 'trunc.txt', O.RDWR);
      await h.client.write(fid, 0, Buffer.from('0123456789'));
      const w = await h.client.walk(h.root, ['trunc.txt']);
      const base = { fid: w.fid, mode: 0, uid: 0, gid: 0, size: 0, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0 };
      await h.client.call({ type: 'Tsetattr', ...base, valid: SetattrMask.SIZE, size: 4 });
      assert.equal(fs.readFileSync(path.join(share, 'trunc.txt'), 'utf8'), '0123');
      await h.client.call({
        type: 'Tsetattr',
        ...base,
        valid: SetattrMask.MODE | SetattrMask.MTIME | SetattrMask.MTIME_SET | SetattrMask.ATIME | SetattrMask.ATIME_SET,
        mode: 0o600,
        mtimeSec: 1_000_000_000,
        mtimeNsec: 500_000_000,
        atimeSec: 1_100_000_000,
      });
      const st = fs.statSync(path.join(share, 'trunc.txt'));
      assert.equal(st.mode & 0o777, 0o600);
      assert.equal(Math.round(st.mtimeMs), 1_000_000_000_500);
      assert.equal(Math.round(st.atimeMs), 1_100_000_000_000);
      const a = await h.client.getattr(w.fid);
      assert.equal(a.mtimeSec, 1_000_000_000);
      // "now" without *_SET.
      await h.client.call({ type: 'Tsetattr', ...base, valid: SetattrMask.MTIME });
      assert.ok(Math.abs(fs.statSync(path.join(share, 'trunc.txt')).mtimeMs - Date.now()) < 10_000);
      // chown to another owner: ignored (security_model=none semantics), not a failure.
      await h.client.call({ type: 'Tsetattr', ...base, valid: SetattrMask.UID | SetattrMask.GID, uid: 0, gid: 0 });
      await h.client.clunk(fid);
      await h.client.clunk(w.fid);
    });

    it('writes at a 1 GiB offset: a sparse file', async () => {
      const fid = await h.client.create(h.root, [], 'sparse.bin', O.RDWR);
      const GiB = 1024 * 1024 * 1024;
      assert.equal(await h.client.write(fid, GiB, Buffer.from('end')), 3);
      const a = await h.client.getattr(fid);
      assert.equal(a.size, GiB + 3);
      assert.ok(a.blocks < 1024, `sparse file uses ${a.blocks} blocks`);
      assert.equal((await h.client.read(fid, GiB - 2, 10)).toString('hex'), '0000656e64');
      assert.equal((await h.client.read(fid, GiB + 3, 10)).length, 0);
      await h.client.clunk(fid);
      assert.equal(fs.statSync(path.join(share, 'sparse.bin')).size, GiB + 3);
    });

    it('opens with O_TRUNC and O_APPEND', async () => {
      fs.writeFileSync(path.join(share, 'app.txt'), 'abc');
      let fid = await h.client.open(h.root, ['app.txt'], O.WRONLY | O.APPEND);
      await h.client.write(fid, 0, Buffer.from('def'));
      await h.client.clunk(fid);
      assert.equal(fs.readFileSync(path.join(share, 'app.txt'), 'utf8'), 'abcdef');
      fid = await h.client.open(h.root, ['app.txt'], O.WRONLY | O.TRUNC);
      await h.client.clunk(fid);
      assert.equal(fs.readFileSync(path.join(share, 'app.txt'), 'utf8'), '');
    });
  });

  describe('directories', () => {
    it('mkdir, readdir with stable offsets across small reads, including . and ..', async () => {
      const m = await h.client.call({ type: 'Tmkdir', dfid: h.root, name: 'many', mode: 0o755, gid: 0 });
      assert.equal(m.qid.type, QidType.DIR);
      const names = Array.from({ length: 250 }, (_, i) => `file-${String(i).padStart(4, '0')}`);
      for (const n of names) fs.writeFileSync(path.join(share, 'many', n), n);
      const fid = await h.client.open(h.root, ['many'], O.RDONLY | O.DIRECTORY);
      const entries = await h.client.readdirAll(fid, 512);
      const got = entries.map((e) => e.name);
      assert.deepEqual(got.slice(0, 2), ['.', '..']);
      assert.deepEqual(got.slice(2).sort(), names);
      assert.equal(new Set(entries.map((e) => e.offset)).size, entries.length);
      const st = fs.lstatSync(path.join(share, 'many', 'file-0007'));
      const e7 = entries.find((e) => e.name === 'file-0007')!;
      assert.equal(e7.qid.path, BigInt(st.ino));
      assert.equal(e7.type, 8);
      // Resume from a middle offset.
      const mid = entries[100]!;
      const r = await h.client.call({ type: 'Treaddir', fid, offset: mid.offset, count: 8192 });
      assert.equal(decodeDirents(r.data)[0]!.name, entries[101]!.name);
      // readdir on a file fid, or an unopened dir fid, fails.
      const w = await h.client.walk(h.root, ['many']);
      await rejectsErrno(h.client.call({ type: 'Treaddir', fid: w.fid, offset: 0, count: 8192 }), Errno.EBADF);
      await h.client.clunk(w.fid);
      await h.client.clunk(fid);
      // mkdir of an existing name.
      await rejectsErrno(h.client.call({ type: 'Tmkdir', dfid: h.root, name: 'many', mode: 0o755, gid: 0 }), Errno.EEXIST);
    });

    it('lists a big directory in batches (a small first one), each entry once, skipping entries gone between batches', async () => {
      fs.mkdirSync(path.join(share, 'big'));
      const names = Array.from({ length: FIRST_LISTING_BATCH + LISTING_BATCH + 500 }, (_, i) => `n${i}`);
      for (const n of names) fs.writeFileSync(path.join(share, 'big', n), '');
      const count = 512 * 1024 - 64;
      // The directory's own order, to know which names come after the batch prefetched next.
      const order = (await h.client.readdirAll(await h.client.open(h.root, ['big'], O.RDONLY | O.DIRECTORY), count)).slice(2).map((e) => e.name);
      const fid = await h.client.open(h.root, ['big'], O.RDONLY | O.DIRECTORY);
      const first = decodeDirents((await h.client.call({ type: 'Treaddir', fid, offset: 0, count })).data);
      assert.equal(first.length, FIRST_LISTING_BATCH + 2, 'the first reply: . and .. and the first batch, although more would fit');
      // Entries beyond the prefetched batch vanish: they are left out, nothing else is.
      const gone = order.slice(-10);
      for (const n of gone) fs.rmSync(path.join(share, 'big', n));
      const rest = [];
      let offset = first.at(-1)!.offset;
      for (;;) {
        const batch = decodeDirents((await h.client.call({ type: 'Treaddir', fid, offset, count })).data);
        if (batch.length === 0) break;
        assert.ok(batch.length <= LISTING_BATCH);
        rest.push(...batch);
        offset = batch.at(-1)!.offset;
      }
      const all = [...first.slice(2), ...rest].map((e) => e.name);
      assert.deepEqual(
        all,
        order.filter((n) => !gone.includes(n)),
        'each entry once, in order, the vanished ones left out',
      );
      await h.client.clunk(fid);
      // Clunked with a prefetch still running: the next listing of the same directory is whole.
      const again = await h.client.open(h.root, ['big'], O.RDONLY | O.DIRECTORY);
      const quick = await h.client.call({ type: 'Treaddir', fid: again, offset: 0, count });
      await h.client.clunk(again);
      assert.equal(decodeDirents(quick.data).length, FIRST_LISTING_BATCH + 2);
      const whole = await h.client.readdirAll(await h.client.open(h.root, ['big'], O.RDONLY | O.DIRECTORY), count);
      assert.equal(whole.length, names.length - gone.length + 2);
    });

    it('a listing primes getattr with exactly the host lstat, and a write through the server replaces it', async () => {
      fs.mkdirSync(path.join(share, 'primed'));
      for (const n of ['a', 'b', 'c']) fs.writeFileSync(path.join(share, 'primed', n), n.repeat(3));
      fs.symlinkSync('a', path.join(share, 'primed', 'l'));
      const dir = await h.client.open(h.root, ['primed'], O.RDONLY | O.DIRECTORY);
      await h.client.readdirAll(dir);
      await h.client.clunk(dir);
      for (const n of ['b', 'l']) {
        const st = fs.lstatSync(path.join(share, 'primed', n), { bigint: true });
        const w = await h.client.walk(h.root, ['primed', n]);
        const a = await h.client.getattr(w.fid);
        await h.client.clunk(w.fid);
        assert.equal(a.qid.path, st.ino, n);
        assert.equal(BigInt(a.mode), st.mode, n);
        assert.equal(BigInt(a.size), st.size, n);
        assert.equal(BigInt(a.mtimeSec) * 1_000_000_000n + BigInt(a.mtimeNsec), st.mtimeNs, n);
      }
      const f = await h.client.open(h.root, ['primed', 'b'], O.WRONLY);
      await h.client.write(f, 3, Buffer.from('more'));
      await h.client.clunk(f);
      const w = await h.client.walk(h.root, ['primed', 'b']);
      assert.equal(Number((await h.client.getattr(w.fid)).size), 7);
      await h.client.clunk(w.fid);
    });

    it('unlinkat files and directories with the right flags', async () => {
      fs.mkdirSync(path.join(share, 'rmme'));
      fs.writeFileSync(path.join(share, 'rmme', 'f'), 'x');
      const d = await h.client.walk(h.root, ['rmme']);
      await rejectsErrno(h.client.call({ type: 'Tunlinkat', dirfid: h.root, name: 'rmme', flags: 0 }), Errno.EISDIR);
      await rejectsErrno(h.client.call({ type: 'Tunlinkat', dirfid: h.root, name: 'rmme', flags: 0x200 }), Errno.ENOTEMPTY);
      await rejectsErrno(h.client.call({ type: 'Tunlinkat', dirfid: d.fid, name: 'f', flags: 0x200 }), Errno.ENOTDIR);
      await h.client.call({ type: 'Tunlinkat', dirfid: d.fid, name: 'f', flags: 0 });
      await h.client.call({ type: 'Tunlinkat', dirfid: h.root, name: 'rmme', flags: 0x200 });
      assert.equal(fs.existsSync(path.join(share, 'rmme')), false);
      await rejectsErrno(h.client.call({ type: 'Tunlinkat', dirfid: h.root, name: '..', flags: 0 }), Errno.EINVAL);
      await h.client.clunk(d.fid);
    });

    it('Tremove removes and clunks even on failure', async () => {
      fs.writeFileSync(path.join(share, 'gone'), 'x');
      const w = await h.client.walk(h.root, ['gone']);
      await h.client.call({ type: 'Tremove', fid: w.fid });
      assert.equal(fs.existsSync(path.join(share, 'gone')), false);
      await rejectsErrno(h.client.getattr(w.fid), Errno.EBADF);
      const r = await h.client.walk(h.root, []);
      await rejectsErrno(h.client.call({ type: 'Tremove', fid: r.fid }), Errno.EBUSY);
      await rejectsErrno(h.client.getattr(r.fid), Errno.EBADF);
    });
  });

  describe('names', () => {
    it('renameat and rename move files, and fids follow', async () => {
      fs.mkdirSync(path.join(share, 'ra'));
      fs.writeFileSync(path.join(share, 'ra', 'f'), 'content');
      const f = await h.client.walk(h.root, ['ra', 'f']);
      const opened = await h.client.open(h.root, ['ra', 'f'], O.RDONLY);
      await h.client.call({ type: 'Trenameat', olddirfid: h.root, oldname: 'ra', newdirfid: h.root, newname: 'rb' });
      assert.ok(fs.existsSync(path.join(share, 'rb', 'f')));
      // The walked fid now names /rb/f; the open one still reads.
      assert.equal((await h.client.getattr(f.fid)).size, 7);
      assert.equal((await h.client.read(opened, 0, 100)).toString(), 'content');
      const docs = await h.client.walk(h.root, ['docs']);
      await h.client.call({ type: 'Trename', fid: f.fid, dfid: docs.fid, name: 'moved' });
      assert.equal(fs.readFileSync(path.join(share, 'docs', 'moved'), 'utf8'), 'content');
      assert.equal((await h.client.getattr(f.fid)).size, 7);
      // Renaming onto itself is a successful no-op.
      await h.client.call({ type: 'Trenameat', olddirfid: h.root, oldname: 'rb', newdirfid: h.root, newname: 'rb' });
      fs.mkdirSync(path.join(share, 'rb', 'sub'));
      const rbSub = await h.client.walk(h.root, ['rb', 'sub']);
      await rejectsErrno(h.client.call({ type: 'Trenameat', olddirfid: h.root, oldname: 'rb', newdirfid: rbSub.fid, newname: 'x' }), Errno.EINVAL);
      for (const fid of [f.fid, opened, docs.fid, rbSub.fid]) await h.client.clunk(fid);
    });

    it('hard links and symlinks', async () => {
      fs.writeFileSync(path.join(share, 'orig'), 'linked');
      const orig = await h.client.walk(h.root, ['orig']);
      await h.client.call({ type: 'Tlink', dfid: h.root, fid: orig.fid, name: 'hard' });
      assert.equal(fs.statSync(path.join(share, 'hard')).ino, fs.statSync(path.join(share, 'orig')).ino);
      assert.equal((await h.client.getattr(orig.fid)).nlink, 2);
      await rejectsErrno(h.client.call({ type: 'Tlink', dfid: h.root, fid: h.root, name: 'dirlink' }), Errno.EPERM);
      const s = await h.client.call({ type: 'Tsymlink', fid: h.root, name: 'soft', symtgt: 'orig', gid: 0 });
      assert.equal(s.qid.type, QidType.SYMLINK);
      assert.equal(fs.readlinkSync(path.join(share, 'soft')), 'orig');
      const l = await h.client.walk(h.root, ['soft']);
      assert.equal(l.qids[0]!.type, QidType.SYMLINK);
      assert.equal((await h.client.call({ type: 'Treadlink', fid: l.fid })).target, 'orig');
      await rejectsErrno(h.client.call({ type: 'Treadlink', fid: orig.fid }), Errno.EINVAL);
      await h.client.clunk(orig.fid);
      await h.client.clunk(l.fid);
    });

    it('mknod makes regular files and FIFOs, refuses devices', async () => {
      const base = { dfid: h.root, major: 0, minor: 0, gid: 0 };
      const r = await h.client.call({ type: 'Tmknod', ...base, name: 'plain', mode: 0o100644 });
      assert.equal(r.qid.type, QidType.FILE);
      assert.ok(fs.lstatSync(path.join(share, 'plain')).isFile());
      if (process.platform !== 'win32') {
        await h.client.call({ type: 'Tmknod', ...base, name: 'pipe', mode: 0o010600 });
        assert.ok(fs.lstatSync(path.join(share, 'pipe')).isFIFO());
        // Opening a FIFO must not park the server.
        const p = await h.client.open(h.root, ['pipe'], O.RDONLY);
        await h.client.clunk(p);
      }
      await rejectsErrno(h.client.call({ type: 'Tmknod', ...base, name: 'dev', mode: 0o020600, major: 1, minor: 3 }), Errno.EPERM);
      await rejectsErrno(h.client.call({ type: 'Tmknod', ...base, name: 'blk', mode: 0o060600, major: 8, minor: 0 }), Errno.EPERM);
    });
  });

  describe('misc', () => {
    it('statfs', async () => {
      const s = await h.client.call({ type: 'Tstatfs', fid: h.root });
      assert.ok(s.bsize > 0);
      assert.ok(s.blocks > 0);
      assert.equal(s.namelen, 255);
    });

    it('xattrs: none to read, listing is empty, setting is not supported', async () => {
      const w = await h.client.walk(h.root, ['docs', 'hello.txt']);
      await rejectsErrno(h.client.call({ type: 'Txattrwalk', fid: w.fid, newfid: h.client.fid(), name: 'security.selinux' }), Errno.ENODATA);
      const xf = h.client.fid();
      const r = await h.client.call({ type: 'Txattrwalk', fid: w.fid, newfid: xf, name: '' });
      assert.equal(r.size, 0);
      assert.equal((await h.client.read(xf, 0, 100)).length, 0);
      await h.client.clunk(xf);
      await rejectsErrno(h.client.call({ type: 'Txattrcreate', fid: w.fid, name: 'user.x', attrSize: 1, flags: 0 }), Errno.EOPNOTSUPP);
      await h.client.clunk(w.fid);
    });

    it('locks are granted and getlock reports unlocked', async () => {
      const fid = await h.client.open(h.root, ['docs', 'hello.txt'], O.RDWR);
      const l = await h.client.call({ type: 'Tlock', fid, lockType: 1, flags: 1, start: 0, length: 0, procId: 42, clientId: 'guest' });
      assert.equal(l.status, 0);
      const g = await h.client.call({ type: 'Tgetlock', fid, lockType: 1, start: 0, length: 10, procId: 42, clientId: 'guest' });
      assert.equal(g.lockType, 2);
      assert.equal(g.length, 10);
      await h.client.clunk(fid);
    });

    it('flush answers Rflush for unknown tags and after the flushed reply', async () => {
      const f = await h.client.call({ type: 'Tflush', oldtag: 999 });
      assert.equal(f.type, 'Rflush');
      // Flush a request in flight: its reply comes first (or it is dropped), then Rflush.
      h.client.keepRaw = true;
      h.client.received.length = 0;
      const tag = h.client.allocTag();
      const getattr = h.client.raw({ type: 'Tgetattr', fid: h.root, requestMask: 0x3fff }, tag);
      const flush = h.client.raw({ type: 'Tflush', oldtag: tag });
      assert.equal((await flush).type, 'Rflush');
      assert.equal((await getattr).type, 'Rgetattr');
      const order = h.client.received.map((b) => b[4]);
      assert.deepEqual(order, [25, 109]);
      h.client.keepRaw = false;
    });

    it('answers unknown and undecodable messages with Rlerror and keeps serving', async () => {
      const tag = h.client.allocTag();
      const frame = Buffer.from([7, 0, 0, 0, 200, tag & 0xff, tag >> 8]);
      const r = await h.client.sendRaw(frame, tag);
      assert.equal(r.type, 'Rlerror');
      // A Twalk whose string length runs past the frame.
      const t2 = h.client.allocTag();
      const bad = encode({ type: 'Twalk', tag: t2, fid: 1, newfid: 77, wnames: ['docs'] });
      bad.writeUInt16LE(500, 17);
      const r2 = await h.client.sendRaw(bad, t2);
      assert.equal(r2.type, 'Rlerror');
      assert.equal((await h.client.getattr(h.root)).type, 'Rgetattr');
      // Names must be UTF-8.
      const t3 = h.client.allocTag();
      const nonUtf8 = encode({ type: 'Twalk', tag: t3, fid: 1, newfid: 78, wnames: ['ab'] });
      nonUtf8[19] = 0xff;
      const r3 = await h.client.sendRaw(nonUtf8, t3);
      assert.equal(r3.type === 'Rlerror' && r3.ecode, Errno.EILSEQ);
    });

    it('closes the channel on broken framing (size above msize or below the header)', async () => {
      for (const size of [3, 6, 600 * 1024, 0xffffffff]) {
        const [a, b] = duplexPair();
        const server = serveNinep(a, h.backend, {});
        const c = new NinepClient(b);
        await c.version();
        const frame = Buffer.alloc(16);
        frame.writeUInt32LE(size, 0);
        frame[4] = 24;
        b.write(frame);
        await server.closed;
        b.destroy();
      }
    });

    it('answers a Tclunk in order, before the next request: its tag and fid serve a request sent right after it', async () => {
      // The guest module answers some clunks itself and uses the tag and the
      // fid number again at once (ethernet-transport.ts, quiet clunks).
      const [a, b] = duplexPair();
      const server = serveNinep(a, h.backend);
      const c = new NinepClient(b);
      await c.version();
      await c.attach(1);
      const { fid } = await c.walk(1, []);
      const replies: Buffer[] = [];
      let pending = Buffer.alloc(0);
      b.removeAllListeners('data');
      b.on('data', (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        while (pending.length >= 4 && pending.length >= pending.readUInt32LE(0)) {
          replies.push(pending.subarray(0, pending.readUInt32LE(0)));
          pending = pending.subarray(pending.readUInt32LE(0));
        }
      });
      // A getattr still running when the clunk comes, then the clunk, then its tag and fid again.
      b.write(
        Buffer.concat([
          encode({ type: 'Tgetattr', tag: 4, fid: 1, requestMask: 0x3fff }),
          encode({ type: 'Tclunk', tag: 5, fid }),
          encode({ type: 'Twalk', tag: 5, fid: 1, newfid: fid, wnames: [] }),
        ]),
      );
      for (let i = 0; i < 200 && replies.length < 3; i++) await new Promise((r) => setTimeout(r, 5));
      const tagged = replies.map((r) => [r.readUInt16LE(5), r[4]]);
      assert.deepEqual(
        tagged.filter(([tag]) => tag === 5),
        [
          [5, 121],
          [5, 111],
        ],
        'Rclunk, then Rwalk for the same tag (no EINVAL for a tag in use)',
      );
      assert.equal(server.counters.errors, 0);
      b.destroy();
      await server.closed;
    });

    it('answers a clone Twalk (no names) in order: its tag and new fid serve a request sent right after it', async () => {
      const [a, b] = duplexPair();
      const server = serveNinep(a, h.backend);
      const c = new NinepClient(b);
      await c.version();
      await c.attach(1);
      const replies: Buffer[] = [];
      let pending = Buffer.alloc(0);
      b.removeAllListeners('data');
      b.on('data', (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        while (pending.length >= 4 && pending.length >= pending.readUInt32LE(0)) {
          replies.push(pending.subarray(0, pending.readUInt32LE(0)));
          pending = pending.subarray(pending.readUInt32LE(0));
        }
      });
      b.write(
        Buffer.concat([
          encode({ type: 'Twalk', tag: 5, fid: 1, newfid: 7, wnames: [] }),
          encode({ type: 'Tgetattr', tag: 5, fid: 7, requestMask: 0x3fff }),
          // The same checks as any walk: a new fid in use, an unknown fid.
          encode({ type: 'Twalk', tag: 6, fid: 1, newfid: 7, wnames: [] }),
          encode({ type: 'Twalk', tag: 8, fid: 99, newfid: 9, wnames: [] }),
        ]),
      );
      for (let i = 0; i < 200 && replies.length < 4; i++) await new Promise((r) => setTimeout(r, 5));
      const byTag = (tag: number) => replies.filter((r) => r.readUInt16LE(5) === tag).map((r) => r[4]);
      assert.deepEqual(byTag(5), [111, 25], 'Rwalk, then Rgetattr of the clone for the same tag');
      assert.deepEqual(byTag(6), [7]);
      assert.deepEqual(byTag(8), [7]);
      b.destroy();
      await server.closed;
    });

    it('serves a flood of pipelined requests with bounded concurrency, then a Tflush behind them', async () => {
      const [a, b] = duplexPair();
      const server = serveNinep(a, h.backend, { concurrency: 2 });
      const c = new NinepClient(b);
      await c.version();
      await c.attach(1);
      const N = 5000;
      const frames: Buffer[] = [];
      const replies: Array<Promise<unknown>> = [];
      const tags: number[] = [];
      for (let i = 0; i < N; i++) {
        const tag = 10 + i;
        tags.push(tag);
        frames.push(encode({ type: 'Tgetattr', tag, fid: 1, requestMask: 0x3fff }));
      }
      // Register expectations, then write everything in one chunk.
      const got = new Set<number>();
      b.on('data', () => {});
      for (const tag of tags.slice(0, N - 1)) replies.push(c.sendRaw(Buffer.alloc(0), tag).then(() => got.add(tag)));
      const last = tags[N - 1]!;
      c.stream.write(Buffer.concat(frames));
      const flush = c.raw({ type: 'Tflush', oldtag: last }, 9);
      assert.equal((await flush).type, 'Rflush');
      await Promise.all(replies);
      assert.equal(got.size, N - 1);
      assert.ok(server.counters.maxInFlight <= 2);
      assert.equal((await c.getattr(1)).type, 'Rgetattr');
      b.destroy();
      await server.closed;
    });

    it("attributes stay coherent with the guest's own writes", async () => {
      fs.writeFileSync(path.join(share, 'coherent'), '');
      const w = await h.client.walk(h.root, ['coherent']);
      assert.equal((await h.client.getattr(w.fid)).size, 0);
      const fid = await h.client.open(h.root, ['coherent'], O.WRONLY);
      await h.client.write(fid, 0, Buffer.from('0123456789'));
      assert.equal((await h.client.getattr(w.fid)).size, 10);
      await h.client.clunk(fid);
      const dir = await h.client.open(h.root, [], O.RDONLY);
      await h.client.readdirAll(dir);
      await h.client.clunk(dir);
      const base = { fid: w.fid, mode: 0, uid: 0, gid: 0, size: 3, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0 };
      await h.client.call({ type: 'Tsetattr', ...base, valid: SetattrMask.SIZE });
      assert.equal((await h.client.getattr(w.fid)).size, 3);
      await h.client.clunk(w.fid);
    });

    it('bounds open files and fids per session', async () => {
      const [a, b] = duplexPair();
      const server = serveNinep(a, h.backend, { maxOpenFiles: 3, maxFids: 6 });
      const c = new NinepClient(b);
      await c.version();
      await c.attach(1);
      const open = [];
      for (let i = 0; i < 3; i++) open.push(await c.open(1, ['docs', 'hello.txt'], O.RDONLY));
      assert.equal(server.counters.openFiles, 3);
      const extra = await c.walk(1, ['docs', 'hello.txt']);
      await rejectsErrno(c.call({ type: 'Tlopen', fid: extra.fid, flags: O.RDONLY }), Errno.EMFILE);
      await c.walk(1, []);
      await rejectsErrno(c.walk(1, []), Errno.EMFILE); // 6 fids: root, 3 open, extra, clone
      await c.clunk(open[0]!);
      await c.call({ type: 'Tlopen', fid: extra.fid, flags: O.RDONLY });
      b.destroy();
      await server.closed;
      assert.equal(server.counters.openFiles, 0);
    });

    it('counts messages and bytes', async () => {
      const before = { ...h.server.counters };
      await h.client.getattr(h.root);
      assert.equal(h.server.counters.messages, before.messages + 1);
      assert.ok(h.server.counters.bytesOut > before.bytesOut);
      assert.ok(h.server.counters.bytesIn > before.bytesIn);
    });

    it('Tversion resets the session: old fids are gone', async () => {
      const [a, b] = duplexPair();
      const server = serveNinep(a, h.backend, {});
      const c = new NinepClient(b);
      await c.version();
      await c.attach(5);
      const fid = await c.open(5, ['docs', 'hello.txt'], O.RDONLY);
      await c.version();
      await rejectsErrno(c.getattr(fid), Errno.EBADF);
      await rejectsErrno(c.getattr(5), Errno.EBADF);
      b.destroy();
      await server.closed;
      assert.equal(server.counters.fids, 0);
    });
  });

  describe('confinement', () => {
    it('.. at the root stays at the root', async () => {
      const rootQid = (await h.client.getattr(h.root)).qid;
      const w = await h.client.walk(h.root, ['..', '..', '..']);
      assert.deepEqual(w.qids[2], rootQid);
      const entries = await h.client.readdirAll(await h.client.open(w.fid, [], O.RDONLY));
      assert.ok(entries.some((e) => e.name === 'docs'));
      assert.ok(!entries.some((e) => e.name === 'outside'));
      const up = await h.client.walk(h.root, ['docs', '..', '..', 'docs', 'hello.txt']);
      assert.equal(up.qids.length, 5);
    });

    it('a symlink pointing outside is read by readlink but never followed', async () => {
      fs.symlinkSync(outside, path.join(share, 'escape-abs'));
      fs.symlinkSync('../outside', path.join(share, 'escape-rel'));
      fs.symlinkSync(path.join(outside, 'secret'), path.join(share, 'secret-link'));
      for (const name of ['escape-abs', 'escape-rel']) {
        const w = await h.client.walk(h.root, [name]);
        assert.equal(w.qids[0]!.type, QidType.SYMLINK);
        assert.ok((await h.client.call({ type: 'Treadlink', fid: w.fid })).target.includes('outside'));
        // Walking through it, opening it, listing it, creating in it: all refused.
        const partial = await h.client.call({ type: 'Twalk', fid: h.root, newfid: h.client.fid(), wnames: [name, 'secret'] });
        assert.equal(partial.wqids.length, 1);
        await rejectsErrno(h.client.walk(w.fid, ['secret']), Errno.ENOTDIR);
        await rejectsErrno(h.client.call({ type: 'Tlopen', fid: w.fid, flags: O.RDONLY }), Errno.ELOOP);
        await rejectsErrno(h.client.call({ type: 'Tlcreate', fid: w.fid, name: 'x', flags: O.RDWR, mode: 0o644, gid: 0 }), Errno.ENOTDIR);
        await rejectsErrno(h.client.call({ type: 'Tmkdir', dfid: w.fid, name: 'x', mode: 0o755, gid: 0 }), Errno.ENOTDIR);
        await h.client.clunk(w.fid);
      }
      const s = await h.client.walk(h.root, ['secret-link']);
      await rejectsErrno(h.client.call({ type: 'Tlopen', fid: s.fid, flags: O.RDONLY }), Errno.ELOOP);
      const base = { fid: s.fid, mode: 0o777, uid: 0, gid: 0, size: 0, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0 };
      await h.client.call({ type: 'Tsetattr', ...base, valid: SetattrMask.MODE }).catch(() => {});
      await h.client.call({ type: 'Tsetattr', ...base, valid: SetattrMask.SIZE }).catch(() => {});
      assert.equal(fs.readFileSync(path.join(outside, 'secret'), 'utf8'), 'top secret');
      assert.equal(fs.statSync(path.join(outside, 'secret')).mode & 0o777, 0o644);
      // A hard link of the symlink links the symlink itself, never its target.
      await h.client.call({ type: 'Tlink', dfid: h.root, fid: s.fid, name: 'secret-hard' }).catch(() => {});
      if (fs.existsSync(path.join(share, 'secret-hard')) || fs.lstatSync(path.join(share, 'secret-hard'), { throwIfNoEntry: false })) {
        assert.ok(fs.lstatSync(path.join(share, 'secret-hard')).isSymbolicLink());
      }
      assert.equal(fs.statSync(path.join(outside, 'secret')).nlink, 1);
      await h.client.clunk(s.fid);
    });

    it('a directory swapped for a symlink between walk and open is refused', async () => {
      fs.mkdirSync(path.join(share, 'swap'));
      fs.writeFileSync(path.join(share, 'swap', 'secret'), 'inside');
      const w = await h.client.walk(h.root, ['swap', 'secret']);
      const d = await h.client.walk(h.root, ['swap']);
      // The host (or a race) replaces the directory with a symlink to outside.
      fs.renameSync(path.join(share, 'swap'), path.join(share, 'swap-old'));
      fs.symlinkSync(outside, path.join(share, 'swap'));
      if (process.platform === 'linux') {
        // Even while the verified-directory cache still trusts 'swap', the
        // opened descriptor is checked (/proc/self/fd) and refused.
        await rejectsErrno(h.client.call({ type: 'Tlopen', fid: w.fid, flags: O.RDONLY }), Errno.EACCES);
      }
      await new Promise((r) => setTimeout(r, 1100)); // outlive the verified-directory cache
      await rejectsErrno(h.client.call({ type: 'Tlopen', fid: w.fid, flags: O.RDONLY }), Errno.ELOOP);
      // getattr never reports the outside file: either refused, or the attributes
      // the server still holds from the walk (its attribute cache) of the inside one.
      const ga = await h.client.getattr(w.fid).then(
        (a) => a.size,
        (e: NinepClientError) => e.errno,
      );
      assert.ok(ga === Errno.ELOOP || ga === 'inside'.length, `getattr gave ${ga}`);
      await rejectsErrno(h.client.call({ type: 'Tlopen', fid: d.fid, flags: O.RDONLY }), Errno.ELOOP);
      await rejectsErrno(h.client.call({ type: 'Tlcreate', fid: d.fid, name: 'planted', flags: O.RDWR, mode: 0o644, gid: 0 }), Errno.ELOOP);
      await rejectsErrno(h.client.call({ type: 'Tunlinkat', dirfid: d.fid, name: 'secret', flags: 0 }), Errno.ELOOP);
      await rejectsErrno(h.client.call({ type: 'Trenameat', olddirfid: d.fid, oldname: 'secret', newdirfid: h.root, newname: 'stolen' }), Errno.ELOOP);
      assert.equal(fs.existsSync(path.join(outside, 'planted')), false);
      assert.equal(fs.readFileSync(path.join(outside, 'secret'), 'utf8'), 'top secret');
      await h.client.clunk(w.fid);
      await h.client.clunk(d.fid);
    });

    it('a guest rename racing a guest lookup never lets the lookup through a symlink', async () => {
      // The guest itself tries the swap: rename dir away + symlink in its place, while
      // hammering opens below it. Every open must either see the real dir or fail.
      fs.mkdirSync(path.join(share, 'race'));
      fs.writeFileSync(path.join(share, 'race', 'secret'), 'inside');
      const results: string[] = [];
      const opener = (async () => {
        for (let i = 0; i < 200; i++) {
          try {
            const fid = await h.client.open(h.root, ['race', 'secret'], O.RDONLY);
            results.push((await h.client.read(fid, 0, 100)).toString());
            await h.client.clunk(fid);
          } catch {
            results.push('error');
          }
        }
      })();
      const swapper = (async () => {
        for (let i = 0; i < 50; i++) {
          await h.client.call({ type: 'Trenameat', olddirfid: h.root, oldname: 'race', newdirfid: h.root, newname: 'race-tmp' }).catch(() => {});
          await h.client.call({ type: 'Tsymlink', fid: h.root, name: 'race', symtgt: outside, gid: 0 }).catch(() => {});
          await h.client.call({ type: 'Tunlinkat', dirfid: h.root, name: 'race', flags: 0 }).catch(() => {});
          await h.client.call({ type: 'Trenameat', olddirfid: h.root, oldname: 'race-tmp', newdirfid: h.root, newname: 'race' }).catch(() => {});
        }
      })();
      await Promise.all([opener, swapper]);
      assert.ok(!results.includes('top secret'), 'read a file outside the root');
      assert.ok(results.length === 200);
      const fid = await h.client.open(h.root, ['race', 'secret'], O.RDONLY);
      assert.equal((await h.client.read(fid, 0, 100)).toString(), 'inside');
      await h.client.clunk(fid);
    });

    it('names with separators or NUL never reach the host', async () => {
      await rejectsErrno(h.client.call({ type: 'Tmkdir', dfid: h.root, name: '../evil', mode: 0o755, gid: 0 }), Errno.ENOENT);
      await rejectsErrno(h.client.call({ type: 'Tmkdir', dfid: h.root, name: 'a\0b', mode: 0o755, gid: 0 }), Errno.ENOENT);
      await rejectsErrno(h.client.call({ type: 'Tsymlink', fid: h.root, name: '..', symtgt: '/', gid: 0 }), Errno.EINVAL);
      assert.equal(fs.existsSync(path.join(tmp, 'evil')), false);
    });
  });

  it('attach with an afid other than NOFID is fine (ignored)', async () => {
    const c = h.client;
    const r = await c.call({ type: 'Tattach', fid: 3, afid: 7, uname: '', aname: '/whatever', nUname: 1000 });
    assert.equal(r.qid.type, QidType.DIR);
    await c.clunk(3);
    assert.equal(NOTAG, 0xffff);
    assert.equal(NOFID, 0xffffffff);
  });
});
