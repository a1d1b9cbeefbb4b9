// Rollback of sealed files: every block and row authenticates, but an older
// copy of a whole file authenticates as well as the current one. A content
// file's header authenticates its content version, which the node's sealed
// row records; each layer.sqlite holds an id that users/<name>/anchor.json
// names and every open renews. Putting back an older content file, an older
// layer.sqlite or an older anchor.json is refused; nothing is changed by the
// refusal, and the current copy still opens.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LayerStore } from '../../../src/dyntable/layer-store.ts';
import { StoreQuota } from '../../../src/dyntable/store-quota.ts';
import { deriveAtRestKey } from '../../../src/dyntable/sealed/keys.ts';
import { SealedDataError } from '../../../src/dyntable/sealed/sealed-file.ts';
import { StickTamperedError } from '../../../src/errors.ts';
import { fileFields, removeDir, tempDir } from '../helpers.ts';

async function readWhole(store: LayerStore, id: number): Promise<string> {
  const content = await store.content.open(id);
  try {
    const buf = Buffer.alloc(1 << 16);
    return buf.subarray(0, await content.read(buf, 0)).toString();
  } finally {
    await content.close();
  }
}

async function overwrite(store: LayerStore, id: number, text: string): Promise<void> {
  const content = await store.content.open(id);
  try {
    await content.truncate(0);
    await content.write(Buffer.from(text), 0);
  } finally {
    await content.close();
  }
}

describe('sealed files put back from an older copy', function () {
  this.timeout(60_000);
  let base: string;
  let userDir: string;
  let upperDir: string;
  const key = deriveAtRestKey(randomBytes(32));

  beforeEach(() => {
    base = tempDir('pocketvm-rollback-');
    userDir = join(base, 'users', 'me');
    upperDir = join(userDir, 'upper');
    mkdirSync(userDir, { recursive: true });
  });
  afterEach(() => removeDir(base));

  it('an older copy of a whole content file is refused (EIO, rolled back); the current one reads', async () => {
    let store = await LayerStore.open(upperDir, { key });
    const node = store.createNodeSync(fileFields());
    store.setEntry({ path: '/notes.txt', kind: 'node', node: node.id, opaque: false, redirect: null });
    await overwrite(store, node.id, 'version one');
    await store.close();
    const path = store.dataPath(node.id);
    const older = readFileSync(path);

    store = await LayerStore.open(upperDir, { key });
    await overwrite(store, node.id, 'version two, written in a later session');
    assert.equal(await readWhole(store, node.id), 'version two, written in a later session');
    await store.close();
    const current = readFileSync(path);

    // The holder of the stick puts the older file back: its blocks and header all authenticate.
    writeFileSync(path, older);
    store = await LayerStore.open(upperDir, { key });
    try {
      await assert.rejects(store.content.open(node.id), (error: unknown) => {
        assert.ok(error instanceof SealedDataError, String(error));
        assert.equal(error.problem, 'rolled-back');
        assert.match(error.message, /is an older copy of itself \(content version 0, current 1\)/);
        return true;
      });
      assert.throws(() => store.content.statSync(node.id), /older copy of itself/);
    } finally {
      await store.close();
    }
    assert.deepEqual(readFileSync(path), older, 'the refusal wrote nothing');

    writeFileSync(path, current);
    store = await LayerStore.open(upperDir, { key });
    assert.equal(await readWhole(store, node.id), 'version two, written in a later session');
    assert.equal(store.content.statSync(node.id).size, 'version two, written in a later session'.length);
    // An fsync (the content, then the rows, as the namespace does) records the version at once; later changes bump it again.
    const content = await store.content.open(node.id);
    await content.write(Buffer.from('THREE'), 0);
    await content.sync(true);
    await store.durable(node.id);
    const synced = readFileSync(path);
    await content.write(Buffer.from('FOUR!'), 0);
    await content.close();
    await store.close();
    writeFileSync(path, synced);
    store = await LayerStore.open(upperDir, { key });
    await assert.rejects(store.content.open(node.id), /content version 2, current 3/);
    await store.close();
  });

  for (const quota of [false, true]) {
    it(`a recorded version is bumped again only after the rows are checkpointed (a pulled stick never leaves the file two versions above its row)${quota ? ', with a quota wrapping the content store too' : ''}`, async () => {
      // With a quota LayerStore holds the sealed store through QuotaContentStore, which must pass the checkpoint on.
      const options = () => ({ key, ...(quota ? { quota: new StoreQuota({ capBytes: 1 << 30 }) } : {}) });
      let store = await LayerStore.open(upperDir, options());
      const node = store.createNodeSync(fileFields());
      store.setEntry({ path: '/f', kind: 'node', node: node.id, opaque: false, redirect: null });
      await overwrite(store, node.id, 'one');
      await store.close();

      store = await LayerStore.open(upperDir, options());
      let content = await store.content.open(node.id);
      await content.write(Buffer.from('two'), 0); // bumps to 1
      await content.sync(true); // records 1; the row is not durable until a checkpoint
      assert.equal(store.node(node.id).contentVersion, 1);
      await content.write(Buffer.from('TWO'), 0); // no second bump before the checkpoint
      await content.close();
      await store.close();
      store = await LayerStore.open(upperDir, options());
      assert.equal(store.node(node.id).contentVersion, 1);

      content = await store.content.open(node.id);
      await content.write(Buffer.from('three'), 0); // bumps to 2
      await content.sync(true);
      await store.durable(node.id); // the checkpoint: the next change bumps again
      await content.write(Buffer.from('four'), 0); // bumps to 3, recorded when the file closes
      await content.close();
      await store.close();
      store = await LayerStore.open(upperDir, options());
      assert.equal(store.node(node.id).contentVersion, 3);
      assert.equal(await readWhole(store, node.id), 'foure');
      await store.close();
    });
  }

  it('a file never written again keeps opening, and files created in a session cost no extra sync', async () => {
    let store = await LayerStore.open(upperDir, { key });
    const node = store.createNodeSync(fileFields());
    store.setEntry({ path: '/a', kind: 'node', node: node.id, opaque: false, redirect: null });
    await overwrite(store, node.id, 'created and written in one session');
    await store.close();
    for (let i = 0; i < 3; i++) {
      store = await LayerStore.open(upperDir, { key });
      assert.equal(await readWhole(store, node.id), 'created and written in one session');
      assert.equal(store.node(node.id).contentVersion ?? 0, 0, 'reading never bumps');
      await store.close();
    }
  });

  it('an empty file first written in a later session starts one version up: a content file a crash left under it never opens', async () => {
    const db = join(upperDir, 'layer.sqlite');
    const anchorFile = join(userDir, 'anchor.json');
    let store = await LayerStore.open(upperDir, { key });
    const node = store.transaction(() => {
      const n = store.createNodeSync(fileFields());
      store.setEntry({ path: '/empty', kind: 'node', node: n.id, opaque: false, redirect: null });
      return n;
    });
    const path = store.dataPath(node.id);
    assert.ok(!existsSync(path), 'an empty new file has no content file');
    // The stick as a crash would leave it: the create committed, nothing after it.
    const atCrash = { db: readFileSync(db), wal: readFileSync(`${db}-wal`), anchor: readFileSync(anchorFile) };
    await overwrite(store, node.id, 'written, but its row never said so');
    await store.close();
    const leftover = readFileSync(path);
    writeFileSync(db, atCrash.db);
    writeFileSync(`${db}-wal`, atCrash.wal);
    writeFileSync(anchorFile, atCrash.anchor);

    // The next session: the row says the file is empty, and the leftover is never read.
    store = await LayerStore.open(upperDir, { key });
    assert.equal(store.content.statSync(node.id).size, 0);
    assert.equal(await readWhole(store, node.id), '');
    await overwrite(store, node.id, 'the current content');
    await store.close();
    store = await LayerStore.open(upperDir, { key });
    assert.equal(store.node(node.id).contentVersion, 1, 'created one version above its row, recorded as the file closed');
    assert.equal(await readWhole(store, node.id), 'the current content');
    await store.close();

    // The leftover put back: its header authenticates, at version 0.
    rmSync(path);
    writeFileSync(path, leftover);
    store = await LayerStore.open(upperDir, { key });
    await assert.rejects(store.content.open(node.id), /is an older copy of itself \(content version 0, current 1\)/);
    await store.close();
  });

  it("a file created empty in the session writes its first header at its row's version (0) and is not bumped in that session", async () => {
    let store = await LayerStore.open(upperDir, { key });
    const node = store.createNodeSync(fileFields());
    store.setEntry({ path: '/new', kind: 'node', node: node.id, opaque: false, redirect: null });
    const content = await store.content.open(node.id);
    await content.write(Buffer.from('first'), 0);
    await content.sync(true);
    await store.durable(node.id);
    await content.write(Buffer.from('FIRST, and more'), 0);
    await content.close();
    assert.equal(store.node(node.id).contentVersion ?? 0, 0, 'never bumped in the session that created it');
    await store.close();
    store = await LayerStore.open(upperDir, { key });
    assert.equal(await readWhole(store, node.id), 'FIRST, and more');
    await store.close();
  });

  it('an older layer.sqlite, or an older anchor.json alone, is refused with one line (exit 10); the current copies open', async () => {
    let store = await LayerStore.open(upperDir, { key });
    store.createNodeSync(fileFields());
    await store.close();
    const db = join(upperDir, 'layer.sqlite');
    const anchorFile = join(userDir, 'anchor.json');
    assert.ok(existsSync(anchorFile));
    const olderDb = readFileSync(db);
    const olderAnchor = readFileSync(anchorFile);

    store = await LayerStore.open(upperDir, { key });
    const node = store.createNodeSync(fileFields());
    store.setEntry({ path: '/later', kind: 'node', node: node.id, opaque: false, redirect: null });
    await store.close();
    const currentDb = readFileSync(db);
    const currentAnchor = readFileSync(anchorFile);

    writeFileSync(db, olderDb);
    await assert.rejects(LayerStore.open(upperDir, { key }), (error: unknown) => {
      assert.ok(error instanceof StickTamperedError, String(error));
      assert.equal(error.exitCode, 10);
      assert.equal(error.details['reason'], 'rolled-back');
      assert.match(error.message, /upper\/layer\.sqlite is an older copy of itself/);
      assert.match(error.hint ?? '', /put back the upper\/layer\.sqlite that belongs with anchor\.json .* or move upper\/ aside/);
      return true;
    });
    assert.deepEqual(readFileSync(anchorFile), currentAnchor, 'the refusal changed nothing');
    assert.deepEqual(readFileSync(db), olderDb);

    writeFileSync(db, currentDb);
    writeFileSync(anchorFile, olderAnchor);
    await assert.rejects(LayerStore.open(upperDir, { key }), /upper\/layer\.sqlite is an older copy of itself/);

    // Both older together are one consistent earlier moment: not detectable (docs/security.md, "Rollback").
    writeFileSync(db, olderDb);
    store = await LayerStore.open(upperDir, { key });
    assert.equal(store.get('/later'), undefined);
    await store.close();

    // Without the anchor, a store that has been named by one is refused too.
    copyFileSync(anchorFile, `${anchorFile}.kept`);
    removeDir(anchorFile);
    await assert.rejects(LayerStore.open(upperDir, { key }), /is not the one .*anchor\.json knows/);
    copyFileSync(`${anchorFile}.kept`, anchorFile);
    await (await LayerStore.open(upperDir, { key })).close();
  });
});
