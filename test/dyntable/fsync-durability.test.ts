// fsync in /host reaches the stick before it returns. The stick is an ext4
// file system on a loop device (mounted with a 10-minute journal commit, so
// nothing becomes durable by the clock during the test); right after the
// guest's Tfsync is answered, the device's contents are copied, which is what
// a stick pulled out at that moment would hold. The copy, mounted and served
// again, has the fsync'd file with its content, in a FIT folder (the stick's
// files store) and through a directory fsync after a rename. Needs root.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { duplexPair } from 'node:stream';
import { compileTable } from '../../src/dyntable/compile.ts';
import { NamespaceBackend } from '../../src/dyntable/namespace-backend.ts';
import { serveNinep } from '../../src/ninep/server.ts';
import { liveHost, removeDir, tempDir } from './helpers.ts';
import { NinepClient } from '../ninep/client.ts';
import { canLoopMount } from '../stick/loop-stick.ts';

async function served<T>(stick: string, home: string, fn: (client: NinepClient) => Promise<T>): Promise<T> {
  const table = compileTable(liveHost(home), [{ name: 'Scratch', table: 'FIT', guestPath: '/host/scratch', origin: 'manifest', source: 'test' }]);
  const backend = await NamespaceBackend.open({ table, filesDir: join(stick, 'files'), upperDir: join(stick, 'upper') });
  const [a, b] = duplexPair();
  const server = serveNinep(a, backend);
  const client = new NinepClient(b);
  try {
    await client.version();
    await client.attach(1);
    return await fn(client);
  } finally {
    b.destroy();
    await server.closed;
    await backend.close();
  }
}

(canLoopMount ? describe : describe.skip)('fsync in /host is durable (loop-mounted ext4 stick, copied as a yank would leave it)', function () {
  this.timeout(120_000);
  let base: string;
  const mounts: string[] = [];

  const mount = (image: string, dir: string) => {
    mkdirSync(dir, { recursive: true });
    execFileSync('mount', ['-o', 'loop,commit=600', image, dir]);
    mounts.push(dir);
  };

  beforeEach(() => {
    base = tempDir('pocketvm-fsync-');
    mkdirSync(join(base, 'home'));
    execFileSync('truncate', ['-s', '64M', join(base, 'stick.img')]);
    execFileSync('mkfs.ext4', ['-q', join(base, 'stick.img')]);
    mount(join(base, 'stick.img'), join(base, 'stick'));
  });
  afterEach(() => {
    for (const dir of mounts.splice(0).reverse()) spawnSync('umount', ['-l', dir]);
    removeDir(base);
  });

  /** What the stick holds now, as if pulled out: the loop device's backing file as written so far. */
  const yank = () => {
    execFileSync('cp', ['--sparse=always', join(base, 'stick.img'), join(base, 'pulled.img')]);
    mount(join(base, 'pulled.img'), join(base, 'pulled'));
    return join(base, 'pulled');
  };

  it("a file fsync'd in a FIT folder is on the stick when fsync returns", async () => {
    await served(join(base, 'stick'), join(base, 'home'), async (client) => {
      const file = await client.create(1, ['scratch'], 'kept.txt');
      await client.write(file, 0, Buffer.from('fsync kept this'));
      await client.call({ type: 'Tfsync', fid: file, datasync: 0 });
      const pulled = yank();
      await served(pulled, join(base, 'home'), async (again) => {
        const read = await again.open(1, ['scratch', 'kept.txt'], 0);
        assert.equal((await again.readAll(read)).toString(), 'fsync kept this');
      });
    });
  });

  it('fdatasync of a file, a rename, and fsync of its directory: the new name is on the stick', async () => {
    await served(join(base, 'stick'), join(base, 'home'), async (client) => {
      const file = await client.create(1, ['scratch'], 'draft.tmp');
      await client.write(file, 0, Buffer.from('saved atomically'));
      await client.call({ type: 'Tfsync', fid: file, datasync: 1 });
      await client.clunk(file);
      const dir = await client.walk(1, ['scratch']);
      await client.call({ type: 'Trenameat', olddirfid: dir.fid, oldname: 'draft.tmp', newdirfid: dir.fid, newname: 'saved.txt' });
      const opened = await client.open(1, ['scratch'], 0);
      await client.call({ type: 'Tfsync', fid: opened, datasync: 0 });
      const pulled = yank();
      await served(pulled, join(base, 'home'), async (again) => {
        const read = await again.open(1, ['scratch', 'saved.txt'], 0);
        assert.equal((await again.readAll(read)).toString(), 'saved atomically');
      });
    });
  });
});
