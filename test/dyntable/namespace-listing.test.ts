// Streamed namespace listings (src/dyntable/namespace-listing.ts): every
// name once, whatever the batch size, seeks and rewinds; and the memory a
// directory handle holds is bounded, however large the folder and however
// many handles are open on it.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { duplexPair } from 'node:stream';
import v8 from 'node:v8';
import vm from 'node:vm';
import { compileTable } from '../../src/dyntable/compile.ts';
import { LayerStore } from '../../src/dyntable/layer-store.ts';
import { NamespaceBackend } from '../../src/dyntable/namespace-backend.ts';
import { LISTING_BATCH, LISTING_READ_AHEAD } from '../../src/dyntable/namespace-listing.ts';
import { type NinepHandle, OpenFlags } from '../../src/ninep/backend.ts';
import { serveNinep } from '../../src/ninep/server.ts';
import { liveHost, removeDir, tempDir } from './helpers.ts';
import { NinepClient } from '../ninep/client.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Every name of a directory handle, `max` entries per call, checking the cookies. */
async function listAll(h: NinepHandle, max: number, from = 0): Promise<string[]> {
  const out: string[] = [];
  let offset = from;
  for (;;) {
    const batch = await h.readdir(offset, max);
    if (batch.length === 0) return out;
    assert.ok(batch.length <= max);
    for (const e of batch) {
      assert.ok(e.offset > offset, `cookie ${e.offset} after ${offset}`);
      offset = e.offset;
      out.push(e.name);
    }
  }
}

describe('dyntable namespace listings, streamed', function () {
  this.timeout(300_000);
  let base: string;
  let backend: NamespaceBackend | undefined;

  const open = async (files: number) => {
    base = tempDir();
    const home = join(base, 'home');
    mkdirSync(join(home, 'Documents', 'many'), { recursive: true });
    for (let i = 0; i < files; i++) writeFileSync(join(home, 'Documents', 'many', `f${i}`), '');
    const table = compileTable(liveHost(home), [
      { name: 'Documents', table: 'FET', guestPath: '/host/Documents', hostPath: '~/Documents', mode: 'cow', origin: 'confirmed', source: 'test' },
    ]);
    backend = await NamespaceBackend.open({ table, filesDir: join(base, 'files'), upperDir: join(base, 'upper') });
    return backend;
  };

  afterEach(async () => {
    await backend?.close();
    backend = undefined;
    removeDir(base);
  });

  it('lists host, copied-up, created and deleted names of a copy-on-write folder once each, in any batch size, after seeks and rewinds', async () => {
    const b = await open(5000);
    const expected = new Set<string>();
    for (let i = 0; i < 5000; i++) expected.add(`f${i}`);
    // Upper entries: new files, copied-up host files (shadowing), whiteouts (deleted host files).
    for (let i = 0; i < 300; i++) {
      const h = await b.create('/Documents/many', `new${i}`, OpenFlags.RDWR, 0o644, 0);
      await h.close();
      expected.add(`new${i}`);
    }
    for (let i = 0; i < 300; i++)
      await b.setattr(`/Documents/many/f${i * 7}`, { valid: 1, mode: 0o600, uid: 0, gid: 0, size: 0, atimeSec: 0, atimeNsec: 0, mtimeSec: 0, mtimeNsec: 0 });
    for (let i = 0; i < 200; i++) {
      await b.unlink('/Documents/many', `f${i * 7 + 3}`, 0);
      expected.delete(`f${i * 7 + 3}`);
    }
    const want = [...expected].sort();
    for (const max of [1, 7, 300, 5000]) {
      const h = await b.open('/Documents/many', OpenFlags.RDONLY);
      const names = await listAll(h, max);
      assert.equal(names.length, want.length, `max ${max}: ${names.length} names`);
      assert.deepEqual([...names].sort(), want, `max ${max}`);
      // A seek back (telldir/seekdir) continues where that cookie was; a rewind starts over.
      const head: Array<{ name: string; offset: number }> = [];
      while (head.length < 1000) head.push(...(await h.readdir(head.at(-1)?.offset ?? 0, 1000 - head.length)));
      assert.equal(head.length, 1000);
      const resumed = await listAll(h, 999, head[999]!.offset);
      assert.deepEqual([...head.map((e) => e.name), ...resumed].sort(), want);
      assert.deepEqual((await listAll(h, 4096)).sort(), want);
      await h.close();
    }
    // Attributes come with the listing: the server's attr cache answers a stat after ls.
    const h = await b.open('/Documents/many', OpenFlags.RDONLY);
    for (const e of await h.readdir(0, 50)) {
      const attr = typeof e.attr === 'function' ? e.attr() : e.attr;
      assert.deepEqual(attr, await b.getattr(`/Documents/many/${e.name}`), e.name);
    }
    await h.close();
  });

  it('a handle holds at most a read-ahead batch, out of one budget for all handles: many handles on a 20,000-entry folder stay small', async () => {
    const b = await open(20_000);
    const HANDLES = 100;
    const handles: NinepHandle[] = [];
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < HANDLES; i++) {
      const h = await b.open('/Documents/many', OpenFlags.RDONLY);
      // Two getdents each: the second leaves the handle mid-listing, with its read-ahead.
      const first = await h.readdir(0, 4096);
      await h.readdir(first.at(-1)!.offset, 4096);
      handles.push(h);
      assert.ok(b.listingReadAhead.used <= b.listingReadAhead.limit);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    // docs/tables-and-namespace.md, "Memory bounds of the namespace": the read-ahead budget (about
    // 1 KiB an entry) plus 64 KiB a handle. A whole listing per handle was
    // about 3.7 MiB each here.
    const bound = LISTING_READ_AHEAD * 1024 + HANDLES * 64 * 1024;
    assert.ok(grown < bound, `${(grown / 2 ** 20).toFixed(1)} MiB for ${HANDLES} handles (bound ${(bound / 2 ** 20).toFixed(1)} MiB)`);
    // Each still lists the whole folder from where it was.
    const rest = await listAll(handles[0]!, 4096, 256 + LISTING_BATCH);
    assert.equal(rest.length, 20_000 - 256 - LISTING_BATCH);
    for (const h of handles) await h.close();
    assert.equal(b.listingReadAhead.used, 0);
  });

  it('through the 9P server, a listing streams on from each Treaddir: never re-read, whatever the reply size', async () => {
    const b = await open(6000);
    for (let i = 0; i < 3000; i++) await (await b.create('/Documents', `guest-made-${i}`, OpenFlags.RDWR, 0o644, 0)).close();
    const [x, y] = duplexPair();
    const server = serveNinep(x, b, { closeBackend: false, maxMsize: 1 << 20 });
    const client = new NinepClient(y);
    try {
      await client.version(1 << 20);
      await client.attach(1);
      for (const [dir, expected] of [
        [['Documents', 'many'], 6000],
        [['Documents'], 3001],
      ] as const) {
        for (const count of [300, 8192, (1 << 20) - 24]) {
          const fid = await client.open(1, [...dir], 0);
          const names = (await client.readdirAll(fid, count)).map((d) => d.name).filter((n) => n !== '.' && n !== '..');
          await client.clunk(fid);
          assert.equal(new Set(names).size, expected, `${dir.join('/')} in ${count}-byte replies`);
          assert.equal(names.length, expected);
        }
      }
      assert.equal(b.listingReadAhead.seeks, 0, 'a Treaddir went back and re-read the folder');
    } finally {
      y.destroy();
      await server.closed;
    }
  });

  it('the layer store pages a folder by name through its index', async () => {
    base = tempDir();
    const store = await LayerStore.open(join(base, 'store'));
    try {
      const dir = await store.createNode({
        mode: 0o40755,
        uid: 0,
        gid: 0,
        rdev: 0,
        target: null,
        qid: null,
        atimeSec: 0,
        atimeNsec: 0,
        mtimeSec: 0,
        mtimeNsec: 0,
        ctimeSec: 0,
        ctimeNsec: 0,
        btimeSec: 0,
        btimeNsec: 0,
      });
      store.setEntry({ path: '/d', kind: 'node', node: dir.id, opaque: true, redirect: null });
      for (let i = 0; i < 250; i++) store.setEntry({ path: `/d/n${String(i).padStart(3, '0')}`, kind: 'whiteout' });
      store.setEntry({ path: '/d/n100/below', kind: 'whiteout' });
      const seen: string[] = [];
      let after = '';
      for (let page = store.childrenAfter('/d', after, 64); page.length > 0; page = store.childrenAfter('/d', after, 64)) {
        assert.ok(page.length <= 64);
        for (const e of page) seen.push(e.path);
        after = page.at(-1)!.path.slice(3);
      }
      assert.equal(seen.length, 250);
      assert.deepEqual(seen, [...seen].sort());
      assert.ok(!seen.includes('/d/n100/below'));
      const plan = store.explainChildrenAfter();
      assert.match(plan, /USING (COVERING )?INDEX entries_parent_name/, plan);
    } finally {
      await store.close();
    }
  });
});
