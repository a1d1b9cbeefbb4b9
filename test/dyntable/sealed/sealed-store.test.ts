import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { compileTable } from '../../../src/dyntable/compile.ts';
import { LayerStore } from '../../../src/dyntable/layer-store.ts';
import { NamespaceBackend } from '../../../src/dyntable/namespace-backend.ts';
import { Errno, OpenFlags, S_IFDIR, S_IFREG } from '../../../src/ninep/backend.ts';
import type { RuleSpec } from '../../../src/dyntable/rules.ts';
import { deriveAtRestKey } from '../../../src/dyntable/sealed/keys.ts';
import { NODE_BYTES, StoreQuota } from '../../../src/dyntable/store-quota.ts';
import { AuthError, StickTamperedError } from '../../../src/errors.ts';
import { serveNinep } from '../../../src/ninep/server.ts';
import { duplexPair } from 'node:stream';
import { NinepClient } from '../../ninep/client.ts';
import { fileFields, liveHost, removeDir, tempDir } from '../helpers.ts';

const rule = (r: Partial<RuleSpec> & Pick<RuleSpec, 'name' | 'table' | 'guestPath'>): RuleSpec => ({ origin: 'confirmed', source: 'test', ...r });

/** Every file below `dir`, recursively. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...filesUnder(path));
    else out.push(path);
  }
  return out;
}

function holding(dir: string, markers: string[]): string[] {
  return filesUnder(dir).flatMap((file) => {
    const raw = readFileSync(file);
    return markers.filter((m) => raw.includes(Buffer.from(m)) || raw.includes(Buffer.from(m, 'utf16le'))).map((m) => `${file}: ${m}`);
  });
}

describe('dyntable layer stores sealed at rest', function () {
  this.timeout(120_000);
  let base: string;
  let home: string;
  let stick: string;
  let filesDir: string;
  let upperDir: string;
  const diskKey = randomBytes(32);
  const key = deriveAtRestKey(diskKey);
  const NAME = 'name-marker-7d1f3a';
  const CONTENT = 'content-marker-51c2e9';
  const TARGET = 'target-marker-88a0b4';

  beforeEach(() => {
    base = tempDir();
    home = join(base, 'home', 'me');
    stick = join(base, 'stick');
    filesDir = join(stick, 'users', 'me', 'files');
    upperDir = join(stick, 'users', 'me', 'upper');
    mkdirSync(join(home, 'Documents'), { recursive: true });
    writeFileSync(join(home, 'Documents', 'host.txt'), 'from the host\n');
  });
  afterEach(() => removeDir(base));

  const table = () =>
    compileTable(liveHost(home, { stickRoot: stick }), [
      rule({ name: 'Documents', table: 'FET', guestPath: '/host/Documents', hostPath: '~/Documents', mode: 'cow' }),
      rule({ name: 'Notes', table: 'FIT', guestPath: '/host/Notes' }),
    ]);

  async function writeFile(b: NamespaceBackend, dir: string, name: string, content: string): Promise<void> {
    const h = await b.create(dir, name, OpenFlags.RDWR, 0o644, 0);
    await h.write(Buffer.from(content), 0);
    await h.close();
  }

  async function readFile(b: NamespaceBackend, path: string): Promise<string> {
    const h = await b.open(path, OpenFlags.RDONLY);
    const buf = Buffer.alloc(1 << 16);
    const n = await h.read(buf, 0);
    await h.close();
    return buf.subarray(0, n).toString();
  }

  async function writeEverything(b: NamespaceBackend): Promise<void> {
    for (const dir of ['/Documents', '/Notes']) {
      await b.mkdir(dir, `${NAME}-dir`, 0o755, 0);
      await writeFile(b, `${dir}/${NAME}-dir`, `${NAME}.txt`, CONTENT.repeat(3));
      await b.symlink(dir, `${NAME}-link`, TARGET, 0);
      await b.rename(`${dir}/${NAME}-dir`, `${NAME}.txt`, dir, `${NAME}-moved.txt`);
    }
    // A host file copied up, then changed.
    const h = await b.open('/Documents/host.txt', OpenFlags.RDWR);
    await h.write(Buffer.from(CONTENT), 14);
    await h.close();
  }

  it('names, contents, symlink targets and sizes are nowhere on the stick; all read back with the key', async () => {
    let b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key });
    await writeEverything(b);
    await b.close();
    assert.deepEqual(holding(stick, [NAME, CONTENT, TARGET, 'from the host']), []);
    b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key });
    for (const dir of ['/Documents', '/Notes']) {
      assert.equal(await readFile(b, `${dir}/${NAME}-moved.txt`), CONTENT.repeat(3));
      assert.equal(await b.readlink(`${dir}/${NAME}-link`), TARGET);
      assert.equal((await b.getattr(`${dir}/${NAME}-moved.txt`)).size, CONTENT.length * 3);
      assert.equal((await b.getattr(`${dir}/${NAME}-dir`)).mode, S_IFDIR | 0o755);
    }
    assert.equal(await readFile(b, '/Documents/host.txt'), `from the host\n${CONTENT}`);
    await b.close();
  });

  it('the same writes to plain stores do show, so the search above can fail', async () => {
    const b = await NamespaceBackend.open({ table: table(), filesDir, upperDir });
    await writeEverything(b);
    await b.close();
    const found = holding(stick, [NAME, CONTENT, TARGET]).join('\n');
    for (const m of [NAME, CONTENT, TARGET]) assert.ok(found.includes(m), `${m} not found in plain stores`);
  });

  it('another key is refused with one line, a sealed store does not open without one', async () => {
    const b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key });
    await writeFile(b, '/Notes', 'x', 'y');
    await b.close();
    await assert.rejects(
      NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: randomBytes(32) }),
      (e: unknown) => e instanceof AuthError && /sealed with another key/.test(e.message),
    );
    await assert.rejects(LayerStore.open(filesDir), /is sealed/);
  });

  it('a plain store from before is sealed in place: same tree and contents, no plaintext left', async () => {
    let b = await NamespaceBackend.open({ table: table(), filesDir, upperDir });
    await writeEverything(b);
    await b.close();
    b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key });
    assert.equal(await readFile(b, `/Notes/${NAME}-moved.txt`), CONTENT.repeat(3));
    assert.equal(await readFile(b, '/Documents/host.txt'), `from the host\n${CONTENT}`);
    assert.equal(await b.readlink(`/Documents/${NAME}-link`), TARGET);
    await b.close();
    assert.deepEqual(holding(stick, [NAME, CONTENT, TARGET, 'from the host']), []);
    // And again: already sealed, nothing changes.
    b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key });
    assert.equal(await readFile(b, `/Notes/${NAME}-moved.txt`), CONTENT.repeat(3));
    await b.close();
  });

  it('a changed row of layer.sqlite is refused (tampered, exit 10), a changed content block is EIO to the reader', async () => {
    let b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key });
    await writeFile(b, '/Notes', 'f', CONTENT.repeat(200));
    await b.close();
    const data = filesUnder(join(filesDir, 'data')).find((f) => statSync(f).size > 4096)!;
    const raw = readFileSync(data);
    raw[100] = raw[100]! ^ 0x40;
    writeFileSync(data, raw);
    b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key });
    const h = await b.open('/Notes/f', OpenFlags.RDONLY);
    await assert.rejects(h.read(Buffer.alloc(10), 0), (e: { errno?: number }) => e.errno === Errno.EIO);
    await h.close();
    assert.equal((await b.getattr('/Notes/f')).mode, S_IFREG | 0o644);
    await b.close();
    const db = new DatabaseSync(join(filesDir, 'layer.sqlite'));
    const row = db.prepare('SELECT id, value FROM sealed_nodes ORDER BY id DESC LIMIT 1').get() as { id: number; value: Uint8Array };
    const value = Buffer.from(row.value);
    value[20] = value[20]! ^ 1;
    db.prepare('UPDATE sealed_nodes SET value = ? WHERE id = ?').run(value, row.id);
    db.close();
    await assert.rejects(
      NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key }),
      (e: unknown) => e instanceof StickTamperedError && e.exitCode === 10 && /changed without its user's key/.test(e.message),
    );
  });

  it('a new empty file puts no content file on the stick; its first write does, and both read back in the next session', async () => {
    let b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key });
    const h = await b.create('/Notes', 'empty', OpenFlags.RDWR, 0o644, 0);
    assert.equal(await h.read(Buffer.alloc(10), 0), 0);
    await h.fsync(false);
    await h.close();
    await writeFile(b, '/Notes', 'later', '');
    await writeFile(b, '/Notes', 'written', CONTENT);
    await b.close();
    // One content file: the written one's.
    assert.equal(filesUnder(join(filesDir, 'data')).length, 1);
    b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key });
    assert.equal((await b.getattr('/Notes/empty')).size, 0);
    assert.equal(await readFile(b, '/Notes/empty'), '');
    assert.equal(await readFile(b, '/Notes/written'), CONTENT);
    // The first write of an empty file, in a later session: its row is saved again, so the content counts after a reopen.
    const w = await b.open('/Notes/later', OpenFlags.RDWR);
    await w.write(Buffer.from(CONTENT), 0);
    await w.close();
    await b.close();
    assert.equal(filesUnder(join(filesDir, 'data')).length, 2);
    b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key });
    assert.equal(await readFile(b, '/Notes/later'), CONTENT);
    assert.equal(await readFile(b, '/Notes/empty'), '');
    await b.close();
  });

  it('the first write of an unwritten file saves its row again, whoever writes it', async () => {
    const dir = join(stick, 'store');
    let store = await LayerStore.open(dir, { key });
    const t = { sec: 1, nsec: 0 };
    const node = store.transaction(() => {
      const n = store.createNodeSync(fileFields({ sec: t.sec, nsec: 0 }));
      store.setEntry({ path: '/f', kind: 'node', node: n.id, opaque: false, redirect: null });
      return n;
    });
    // Straight to the content store: no touchForWrite, no metadata change.
    const content = await store.content.open(node.id);
    await content.write(Buffer.from(CONTENT), 0);
    await content.close();
    await store.close();
    store = await LayerStore.open(dir, { key });
    assert.equal(store.content.statSync(node.id).size, CONTENT.length);
    await store.close();
  });

  it('with a quota (the content store wrapped): an unwritten file counts only its node, its first write is charged and saves its row', async () => {
    const dir = join(stick, 'store');
    let quota = new StoreQuota({ capBytes: 1 << 20 });
    let store = await LayerStore.open(dir, { key, quota });
    const t = { sec: 1, nsec: 0 };
    const node = store.transaction(() => {
      const n = store.createNodeSync(fileFields({ sec: t.sec, nsec: 0 }));
      store.setEntry({ path: '/f', kind: 'node', node: n.id, opaque: false, redirect: null });
      return n;
    });
    assert.equal(quota.usedBytes, NODE_BYTES);
    assert.equal(store.content.statSync(node.id).size, 0);
    // Straight to the content store: no touchForWrite; only rowChanged, passed through the wrapper, saves the row.
    const content = await store.content.open(node.id);
    await content.write(Buffer.from(CONTENT), 0);
    assert.equal(quota.usedBytes, NODE_BYTES + CONTENT.length);
    await content.close();
    await store.close();
    assert.equal(quota.usedBytes, 0, 'given back at close');
    // Without the saved total (an open with no quota forgets it), every file's length is read again.
    await (await LayerStore.open(dir, { key })).close();
    quota = new StoreQuota({ capBytes: 1 << 20 });
    store = await LayerStore.open(dir, { key, quota });
    assert.equal(store.content.statSync(node.id).size, CONTENT.length);
    assert.equal(quota.usedBytes, NODE_BYTES + CONTENT.length);
    await store.close();
  });

  it('a written file whose content file is emptied or removed is refused, and a content file put under an empty one is never read', async () => {
    let b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key });
    await writeFile(b, '/Notes', 'written', CONTENT.repeat(10));
    await b.close();
    const [data] = filesUnder(join(filesDir, 'data'));
    const sealed = readFileSync(data!);
    b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key });
    const h = await b.create('/Notes', 'empty', OpenFlags.RDWR, 0o644, 0);
    await h.close();
    await b.close();
    // The empty file's node follows the written one's: put a sealed content file at every id after it.
    const id = Number(data!.split('/').pop());
    for (let next = id + 1; next <= id + 8; next++) {
      const path = join(filesDir, 'data', (next & 0xff).toString(16).padStart(2, '0'), String(next));
      mkdirSync(join(path, '..'), { recursive: true });
      writeFileSync(path, sealed);
    }
    b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key });
    assert.equal((await b.getattr('/Notes/empty')).size, 0);
    assert.equal(await readFile(b, '/Notes/empty'), '');
    await b.close();
    writeFileSync(data!, '');
    b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key });
    await assert.rejects(b.open('/Notes/written', OpenFlags.RDONLY), (e: { errno?: number }) => e.errno === Errno.EIO);
    await b.close();
    rmSync(data!);
    b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key });
    await assert.rejects(b.open('/Notes/written', OpenFlags.RDONLY), (e: { errno?: number }) => e.errno === Errno.EIO || e.errno === Errno.ENOENT);
    await b.close();
  });

  it('over 9P a tampered block is EIO to the guest, and the log names neither the file nor its content', async () => {
    let b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key });
    await writeFile(b, '/Notes', `${NAME}.txt`, CONTENT.repeat(200));
    await b.close();
    const data = filesUnder(join(filesDir, 'data')).find((f) => statSync(f).size > 4096)!;
    const raw = readFileSync(data);
    raw[200] = raw[200]! ^ 1;
    writeFileSync(data, raw);
    b = await NamespaceBackend.open({ table: table(), filesDir, upperDir, atRestKey: key });
    const [serverEnd, clientEnd] = duplexPair();
    const logs: string[] = [];
    const server = serveNinep(serverEnd, b, { log: (m) => logs.push(m) });
    const client = new NinepClient(clientEnd);
    await client.version();
    await client.attach(1);
    const fid = await client.open(1, ['Notes', `${NAME}.txt`], 0);
    await assert.rejects(client.read(fid, 0, 100), (e: { errno?: number }) => e.errno === Errno.EIO);
    clientEnd.destroy();
    await server.closed;
    const log = logs.join('\n');
    assert.match(log, /Tread failed: SealedDataError \(tampered\)/);
    assert.doesNotMatch(log, new RegExp(`${NAME}|${CONTENT}|Notes`));
  });
});
