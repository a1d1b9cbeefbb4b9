// The NamespaceBackend behind the real 9P server (in process): what the guest
// kernel would send, against a temporary host folder and stick.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { duplexPair } from 'node:stream';
import { compileTable } from '../../src/dyntable/compile.ts';
import { NamespaceBackend } from '../../src/dyntable/namespace-backend.ts';
import { serveNinep } from '../../src/ninep/server.ts';
import { liveHost, removeDir, snapshotTree, tempDir } from './helpers.ts';
import { NinepClient } from '../ninep/client.ts';

describe('dyntable namespace over 9P', () => {
  let base: string;
  afterEach(() => removeDir(base));

  it('walks, lists, reads and writes through the server; the host stays as it was', async () => {
    base = tempDir();
    const home = join(base, 'home', 'me');
    mkdirSync(join(home, 'Documents', 'sub'), { recursive: true });
    writeFileSync(join(home, 'Documents', 'a.txt'), 'alpha');
    mkdirSync(join(home, '.ssh'));
    writeFileSync(join(home, '.ssh', 'id_rsa'), 'KEY');
    const before = snapshotTree(home);
    const table = compileTable(liveHost(home), [
      { name: 'Documents', table: 'FET', guestPath: '/host/Documents', hostPath: '~/Documents', origin: 'builtin', source: 'built-in' },
      { name: 'Home', table: 'FET', guestPath: '/host/home', hostPath: '~', mode: 'readonly', origin: 'confirmed', source: 'test' },
      { name: 'Scratch', table: 'FIT', guestPath: '/host/scratch', origin: 'manifest', source: 'test' },
    ]);
    const backend = await NamespaceBackend.open({ table, filesDir: join(base, 'stick', 'files'), upperDir: join(base, 'stick', 'upper') });
    const [a, b] = duplexPair();
    const server = serveNinep(a, backend);
    const client = new NinepClient(b);
    try {
      await client.version();
      await client.attach(1);
      const root = await client.open(1, [], 0);
      assert.deepEqual(
        (await client.readdirAll(root)).map((d) => d.name).filter((n) => n !== '.' && n !== '..'),
        ['Documents', 'home', 'scratch'],
      );
      const home9 = await client.open(1, ['home'], 0);
      const names = (await client.readdirAll(home9)).map((d) => d.name);
      assert.ok(names.includes('Documents') && !names.includes('.ssh'));
      // A walk stops at the first missing name (partial walk: one qid for 'home').
      assert.equal((await client.walk(1, ['home', '.ssh', 'id_rsa'])).qids.length, 1);
      const fa = await client.open(1, ['Documents', 'a.txt'], 2);
      assert.equal((await client.readAll(fa)).toString(), 'alpha');
      assert.equal(await client.write(fa, 5, Buffer.from(' beta')), 5);
      await client.clunk(fa);
      const fr = await client.open(1, ['Documents', 'a.txt'], 0);
      assert.equal((await client.readAll(fr)).toString(), 'alpha beta');
      const fn = await client.create(1, ['scratch'], 'note.txt');
      await client.write(fn, 0, Buffer.from('on the stick'));
      await client.clunk(fn);
      const ro = await client.walk(1, ['home']);
      await assert.rejects(
        client.call({ type: 'Tlcreate', fid: ro.fid, name: 'x', flags: 2, mode: 0o644, gid: 0 }),
        (error: { errno?: number }) => error.errno === 30,
      );
      const attr = await client.getattr((await client.walk(1, ['Documents', 'a.txt'])).fid);
      assert.equal(attr.size, 10);
    } finally {
      b.destroy();
      await server.closed;
      await backend.close();
    }
    assert.deepEqual(snapshotTree(home), before);
  });
});
