// The quota on what the guest writes to the stick through /host
// (src/dyntable/store-quota.ts): files/ and upper/ together, through the
// namespace backend a session serves, plain and sealed. A growth past the
// quota or into the stick's reserve fails that request with ENOSPC, nothing
// written before changes, the person is told once, and deleting makes room.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { compileTable } from '../../src/dyntable/compile.ts';
import { NamespaceBackend } from '../../src/dyntable/namespace-backend.ts';
import { Errno, OpenFlags, SetattrMask, type SetattrRequest } from '../../src/ninep/backend.ts';
import type { CompiledTable, RuleSpec } from '../../src/dyntable/rules.ts';
import { NODE_BYTES, StoreQuota } from '../../src/dyntable/store-quota.ts';
import { liveHost, removeDir, tempDir } from './helpers.ts';

const MiB = 1024 * 1024;
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

async function errnoOf(promise: Promise<unknown>): Promise<number | undefined> {
  try {
    await promise;
    return undefined;
  } catch (error) {
    return (error as { errno?: number }).errno ?? -1;
  }
}

for (const sealed of [false, true])
  describe(`store quota: files/ and upper/ through the namespace${sealed ? ' (sealed at rest)' : ''}`, function () {
    let base: string;
    let home: string;
    let filesDir: string;
    let upperDir: string;
    let backend: NamespaceBackend | undefined;
    const atRestKey = randomBytes(32);

    beforeEach(() => {
      base = tempDir('pocketvm-quota-');
      home = join(base, 'home', 'me');
      filesDir = join(base, 'stick', 'users', 'me', 'files');
      upperDir = join(base, 'stick', 'users', 'me', 'upper');
      mkdirSync(join(home, 'Documents'), { recursive: true });
      writeFileSync(join(home, 'Documents', 'host.bin'), Buffer.alloc(300 * 1024, 7));
    });

    afterEach(async () => {
      await backend?.close();
      backend = undefined;
      removeDir(base);
    });

    function table(withNotes = true): CompiledTable {
      return compileTable(liveHost(home, { stickRoot: join(base, 'stick') }), [
        rule({ name: 'Documents', table: 'FET', guestPath: '/host/Documents', hostPath: '~/Documents', mode: 'cow' }),
        ...(withNotes ? [rule({ name: 'Notes', table: 'FIT', guestPath: '/host/Notes' })] : []),
      ]);
    }

    async function open(quota: StoreQuota, withNotes = true): Promise<NamespaceBackend> {
      backend = await NamespaceBackend.open({ table: table(withNotes), filesDir, upperDir, quota, ...(sealed ? { atRestKey } : {}) });
      return backend;
    }

    async function writeNew(b: NamespaceBackend, dir: string, name: string, data: Buffer): Promise<void> {
      const h = await b.create(dir, name, OpenFlags.RDWR, 0o644, 0);
      try {
        await h.write(data, 0);
      } finally {
        await h.close();
      }
    }

    async function read(b: NamespaceBackend, path: string): Promise<Buffer> {
      const h = await b.open(path, OpenFlags.RDONLY);
      try {
        const buf = Buffer.alloc(4 * MiB);
        const n = await h.read(buf, 0);
        return buf.subarray(0, n);
      } finally {
        await h.close();
      }
    }

    it('refuses the write that would pass the quota with ENOSPC, keeps what was written, tells once, and writes again after a delete', async () => {
      const told: string[] = [];
      const quota = new StoreQuota({ capBytes: 2 * MiB, onFull: (message) => told.push(message) });
      const b = await open(quota);
      const first = randomBytes(MiB);
      await writeNew(b, '/Documents', 'first.bin', first);
      const h = await b.create('/Notes', 'second.bin', OpenFlags.RDWR, 0o644, 0);
      await h.write(Buffer.alloc(512 * 1024, 1), 0);
      // The next 1 MiB does not fit: that write alone fails, the file keeps its 512 KiB.
      assert.equal(await errnoOf(h.write(Buffer.alloc(MiB, 2), 512 * 1024)), Errno.ENOSPC);
      assert.equal(await errnoOf(h.write(Buffer.alloc(MiB, 3), 512 * 1024)), Errno.ENOSPC);
      await h.close();
      assert.equal(told.length, 1, 'told once for two refusals');
      assert.match(told[0]!, /^the guest's files on the stick are at their quota \(\d+ of 2 MiB\)/);
      assert.equal(quota.status().full?.reason, 'quota');
      assert.deepEqual(await read(b, '/Documents/first.bin'), first);
      assert.deepEqual(await read(b, '/Notes/second.bin'), Buffer.alloc(512 * 1024, 1));
      assert.equal((await b.getattr('/Notes/second.bin')).size, 512 * 1024);
      // A growth by truncate and a copy-up of a host file count too.
      assert.equal(await errnoOf(b.setattr('/Notes/second.bin', setattr({ valid: SetattrMask.SIZE, size: 3 * MiB }))), Errno.ENOSPC);
      // After a delete there is room again, and the state clears.
      await b.unlink('/Documents', 'first.bin', 0);
      assert.equal(quota.status().full, undefined);
      await writeNew(b, '/Documents', 'third.bin', Buffer.alloc(MiB, 4));
      await b.setattr('/Documents/host.bin', setattr({ valid: SetattrMask.MODE, mode: 0o600 }));
      assert.ok(quota.usedBytes >= 512 * 1024 + MiB + 300 * 1024, `${quota.usedBytes} counted`);
    });

    it('counts a node per create: a guest cannot fill the stick with empty files', async () => {
      const quota = new StoreQuota({ capBytes: 64 * NODE_BYTES });
      const b = await open(quota);
      let made = 0;
      let errno: number | undefined;
      for (; made < 200; made++) {
        errno = await errnoOf(b.create('/Notes', `f${made}`, OpenFlags.RDWR, 0o644, 0).then((h) => h.close()));
        if (errno !== undefined) break;
      }
      assert.equal(errno, Errno.ENOSPC);
      assert.ok(made > 50 && made < 64, `${made} files made`);
      assert.equal(await errnoOf(b.mkdir('/Notes', 'dir', 0o755, 0)), Errno.ENOSPC);
      await b.unlink('/Notes', 'f0', 0);
      await b.mkdir('/Notes', 'dir', 0o755, 0);
    });

    it('keeps a running total that a reopen recomputes to the same figure, and gives it back at close', async () => {
      const quota = new StoreQuota({ capBytes: 64 * MiB });
      let b = await open(quota);
      await writeNew(b, '/Notes', 'a', Buffer.alloc(100_000, 1));
      await writeNew(b, '/Documents', 'b', Buffer.alloc(70_000, 2));
      await b.symlink('/Notes', 'link', 'a', 0);
      await b.mkdir('/Notes', 'dir', 0o755, 0);
      await b.setattr('/Notes/a', setattr({ valid: SetattrMask.SIZE, size: 10 }));
      const h = await b.open('/Documents/b', OpenFlags.RDWR);
      await h.write(Buffer.alloc(5000, 3), 68_000);
      await h.close();
      await b.rename('/Documents', 'b', '/Documents', 'c');
      await b.setattr('/Documents/host.bin', setattr({ valid: SetattrMask.MODE, mode: 0o600 }));
      await b.unlink('/Notes', 'link', 0);
      const running = quota.usedBytes;
      await b.close();
      backend = undefined;
      assert.equal(quota.usedBytes, 0, 'a closed backend counts nothing');
      const fresh = new StoreQuota({ capBytes: 64 * MiB });
      b = await open(fresh);
      assert.equal(fresh.usedBytes, running, 'from the total the clean close saved');
      // Changes after the reopen are counted on top, a file's own length read at its first change.
      await b.setattr('/Notes/a', setattr({ valid: SetattrMask.SIZE, size: 1000 }));
      await b.unlink('/Documents', 'c', 0);
      const changed = fresh.usedBytes;
      assert.equal(changed, running + 990 - 73_000 - NODE_BYTES);
      // A crash leaves no saved total: the next open reads every file's length, to the same figure.
      await b.close();
      backend = undefined;
      for (const dir of [filesDir, upperDir]) {
        const db = new DatabaseSync(join(dir, 'layer.sqlite'));
        assert.equal((db.prepare("SELECT count(*) AS n FROM meta WHERE key = 'quota-content-bytes'").get() as { n: number }).n, 1);
        db.exec("DELETE FROM meta WHERE key = 'quota-content-bytes'");
        db.close();
      }
      const recounted = new StoreQuota({ capBytes: 64 * MiB });
      b = await open(recounted);
      assert.equal(recounted.usedBytes, changed, 'read from every file');
      // 10 + 73,000 + 300 KiB of content (a, c, host.bin copied up).
      const content = 10 + 73_000 + 300 * 1024;
      assert.ok(running >= content && running - content < 32 * NODE_BYTES, `${running} counted`);
    });

    it('does not trust a saved total after an open without a quota (which may have changed the store)', async () => {
      let b = await open(new StoreQuota({ capBytes: 64 * MiB }));
      await writeNew(b, '/Notes', 'a', Buffer.alloc(10_000, 1));
      await b.close();
      backend = undefined;
      backend = b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, ...(sealed ? { atRestKey } : {}) });
      await writeNew(b, '/Notes', 'b', Buffer.alloc(20_000, 1));
      await b.close();
      backend = undefined;
      const quota = new StoreQuota({ capBytes: 64 * MiB });
      b = await open(quota);
      // Two files and the Notes folder's own node in files/ (upper/ holds nothing here).
      assert.equal(quota.usedBytes, 30_000 + 3 * NODE_BYTES);
    });

    it('opens over a store already past its quota (a lower quota set later, a FIT entry new on this launch)', async () => {
      let b = await open(new StoreQuota({ capBytes: 64 * MiB }), false);
      await writeNew(b, '/Documents', 'big', Buffer.alloc(2 * MiB));
      await b.close();
      backend = undefined;
      const quota = new StoreQuota({ capBytes: MiB });
      b = await open(quota);
      assert.ok(quota.usedBytes > MiB);
      assert.equal((await b.getattr('/Notes')).mode & 0o170000, 0o040000);
      assert.equal(await errnoOf(b.create('/Notes', 'x', OpenFlags.RDWR, 0o644, 0)), Errno.ENOSPC);
      await b.unlink('/Documents', 'big', 0);
      await writeNew(b, '/Notes', 'x', Buffer.alloc(1000));
    });

    it('keeps the reserve on the stick: a write that would eat into it is ENOSPC, whatever the quota', async () => {
      let free = 100 * MiB;
      const told: string[] = [];
      const quota = new StoreQuota({ capBytes: 1024 * MiB, reserveBytes: 99 * MiB, freeBytes: () => free, onFull: (message) => told.push(message) });
      const b = await open(quota);
      await writeNew(b, '/Notes', 'small', Buffer.alloc(100_000));
      const h = await b.create('/Notes', 'big', OpenFlags.RDWR, 0o644, 0);
      assert.equal(await errnoOf(h.write(Buffer.alloc(2 * MiB), 0)), Errno.ENOSPC);
      assert.equal(quota.status().full?.reason, 'reserve');
      assert.match(told[0]!, /^the stick is nearly full \(100 MiB free, 99 MiB kept for the personal disk and a suspend\)/);
      free = 200 * MiB;
      await h.write(Buffer.alloc(2 * MiB), 0);
      await h.close();
      assert.equal(quota.status().full, undefined);
    });
  });
