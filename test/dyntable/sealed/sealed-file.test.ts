import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { Errno, ErrnoError } from '../../../src/ninep/backend.ts';
import { StoreKeys } from '../../../src/dyntable/sealed/keys.ts';
import { BLOCK_OVERHEAD, HEADER_BYTES, SealedDataError, SealedFile, sealedBytesBehind } from '../../../src/dyntable/sealed/sealed-file.ts';

describe('sealed file format', () => {
  let dir: string;
  let keys: StoreKeys;
  const BS = 4096;
  const STRIDE = BS + BLOCK_OVERHEAD;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sealed-file-'));
    keys = new StoreKeys(randomBytes(32), randomBytes(32));
  });
  afterEach(() => {
    keys.close();
    rmSync(dir, { recursive: true, force: true });
  });

  // The format at 4 KiB blocks (gocryptfs's size), so the cases cross many boundaries; the store's default is larger.
  const create = (name: string, node: number) => SealedFile.create(join(dir, name), keys.fileKey(keys.fileId(node)), keys.fileId(node), 12);
  const reopen = (name: string, node: number) => SealedFile.open(join(dir, name), keys.fileKey(keys.fileId(node)), keys.fileId(node));
  async function readAll(file: SealedFile): Promise<Buffer> {
    const out = Buffer.alloc(file.size);
    const n = await file.read(out, 0);
    assert.equal(n, file.size);
    return out;
  }
  const expectEio = async (promise: Promise<unknown>, problem: string) => {
    await assert.rejects(promise, (error: unknown) => error instanceof SealedDataError && error.errno === Errno.EIO && error.problem === problem);
  };

  it('round-trips content across sessions, and the disk shows neither the content nor the exact size', async () => {
    const data = Buffer.from('a marker that must not show '.repeat(500));
    const file = await create('f', 1);
    assert.equal(await file.write(data, 0), data.length);
    await file.close();
    const raw = readFileSync(join(dir, 'f'));
    assert.equal(raw.includes(Buffer.from('a marker')), false);
    // Whole blocks only: the size shows to the block, not to the byte.
    assert.equal(raw.length, HEADER_BYTES + Math.ceil(data.length / BS) * STRIDE);
    const again = await reopen('f', 1);
    assert.equal(again.size, data.length);
    assert.deepEqual(await readAll(again), data);
    await again.close();
  });

  it('writes and reads at random places across block boundaries', async () => {
    const model = Buffer.alloc(5 * BS + 123);
    const file = await create('f', 2);
    let size = 0;
    const writes: [number, number][] = [
      [0, 10],
      [BS - 3, 7],
      [2 * BS - 1, BS + 2],
      [3 * BS + 100, 5],
      [5 * BS + 100, 23],
      [7, 3 * BS],
    ];
    for (const [at, len] of writes) {
      const chunk = randomBytes(len);
      chunk.copy(model, at);
      await file.write(chunk, at);
      size = Math.max(size, at + len);
    }
    assert.equal(file.size, size);
    assert.deepEqual(await readAll(file), model.subarray(0, size));
    // Reads that start and end inside blocks.
    const part = Buffer.alloc(BS + 10);
    assert.equal(await file.read(part, BS - 5), BS + 10);
    assert.deepEqual(part, model.subarray(BS - 5, 2 * BS + 5));
    // A read past the end is short; at the end, empty.
    assert.equal(await file.read(Buffer.alloc(100), size - 10), 10);
    assert.equal(await file.read(Buffer.alloc(100), size), 0);
    await file.close();
    const again = await reopen('f', 2);
    assert.deepEqual(await readAll(again), model.subarray(0, size));
    await again.close();
  });

  it('fills a gap left by a write beyond the end with zeros', async () => {
    const file = await create('f', 3);
    await file.write(Buffer.from('head'), 0);
    await file.write(Buffer.from('tail'), 3 * BS + 1);
    const all = await readAll(file);
    assert.equal(all.length, 3 * BS + 5);
    assert.equal(all.subarray(0, 4).toString(), 'head');
    assert.equal(
      all.subarray(4, 3 * BS + 1).every((b) => b === 0),
      true,
    );
    assert.equal(all.subarray(3 * BS + 1).toString(), 'tail');
    await file.close();
  });

  it('truncates down and up: cut bytes read back as zeros, only the edge block is re-sealed', async () => {
    const data = randomBytes(4 * BS);
    const file = await create('f', 4);
    await file.write(data, 0);
    // Written behind: on the stick once synced.
    await file.sync(true);
    const before = readFileSync(join(dir, 'f'));
    await file.truncate(BS + 10);
    assert.equal(file.size, BS + 10);
    const after = readFileSync(join(dir, 'f'));
    assert.equal(after.length, HEADER_BYTES + 2 * STRIDE);
    // Block 0 untouched; block 1 (the new last one) re-sealed.
    assert.deepEqual(after.subarray(HEADER_BYTES, HEADER_BYTES + STRIDE), before.subarray(HEADER_BYTES, HEADER_BYTES + STRIDE));
    assert.notDeepEqual(after.subarray(HEADER_BYTES + STRIDE), before.subarray(HEADER_BYTES + STRIDE, HEADER_BYTES + 2 * STRIDE));
    assert.deepEqual(await readAll(file), data.subarray(0, BS + 10));
    await file.truncate(3 * BS);
    const grown = await readAll(file);
    assert.deepEqual(grown.subarray(0, BS + 10), data.subarray(0, BS + 10));
    assert.equal(
      grown.subarray(BS + 10).every((b) => b === 0),
      true,
    );
    await file.truncate(0);
    assert.equal(statSync(join(dir, 'f')).size, HEADER_BYTES);
    await file.close();
    const again = await reopen('f', 4);
    assert.equal(again.size, 0);
    await again.close();
  });

  it('a gap or a truncate up is a hole: zeros, nothing written for it (gocryptfs does the same)', async () => {
    const file = await create('f', 13);
    await file.write(Buffer.from('start'), 0);
    await file.truncate(1024 * BS);
    await file.write(Buffer.from('end'), 2048 * BS);
    await file.sync(true);
    const st = statSync(join(dir, 'f'));
    assert.equal(st.size, HEADER_BYTES + 2049 * STRIDE);
    assert.ok(st.blocks * 512 < 64 * BS, `a sparse sealed file took ${st.blocks * 512} bytes`);
    const middle = Buffer.alloc(3 * BS, 1);
    assert.equal(await file.read(middle, 700 * BS + 5), 3 * BS);
    assert.equal(
      middle.every((b) => b === 0),
      true,
    );
    // A write into a hole seals only its block.
    await file.write(Buffer.from('mid'), 1500 * BS + 7);
    const back = Buffer.alloc(10);
    await file.read(back, 1500 * BS + 5);
    assert.deepEqual(back, Buffer.from('\0\0mid\0\0\0\0\0'));
    await file.close();
  });

  it('a flipped byte is EIO, for the block it is in', async () => {
    const file = await create('f', 5);
    await file.write(randomBytes(3 * BS), 0);
    await file.close();
    const raw = readFileSync(join(dir, 'f'));
    raw[HEADER_BYTES + STRIDE + 100] = raw[HEADER_BYTES + STRIDE + 100]! ^ 1;
    writeFileSync(join(dir, 'f'), raw);
    const again = await reopen('f', 5);
    await expectEio(again.read(Buffer.alloc(10), BS + 50), 'tampered');
    // Other blocks still read.
    assert.equal(await again.read(Buffer.alloc(BS), 0), BS);
    await again.close();
  });

  it('a flipped byte in the header (the sealed size) is EIO at open', async () => {
    const file = await create('f', 6);
    await file.write(randomBytes(100), 0);
    await file.close();
    const raw = readFileSync(join(dir, 'f'));
    raw[HEADER_BYTES - 20] = raw[HEADER_BYTES - 20]! ^ 1;
    writeFileSync(join(dir, 'f'), raw);
    await expectEio(reopen('f', 6), 'tampered');
  });

  it('swapped blocks are EIO', async () => {
    const file = await create('f', 7);
    await file.write(randomBytes(2 * BS), 0);
    await file.close();
    const raw = readFileSync(join(dir, 'f'));
    const b0 = Buffer.from(raw.subarray(HEADER_BYTES, HEADER_BYTES + STRIDE));
    raw.copy(raw, HEADER_BYTES, HEADER_BYTES + STRIDE, HEADER_BYTES + 2 * STRIDE);
    b0.copy(raw, HEADER_BYTES + STRIDE);
    writeFileSync(join(dir, 'f'), raw);
    const again = await reopen('f', 7);
    await expectEio(again.read(Buffer.alloc(10), 0), 'tampered');
    await expectEio(again.read(Buffer.alloc(10), BS), 'tampered');
    await again.close();
  });

  it('swapped files are EIO: each opens only as its own node', async () => {
    for (const [name, node] of [
      ['a', 8],
      ['b', 9],
    ] as const) {
      const file = await create(name, node);
      await file.write(Buffer.from(`content of ${name}`), 0);
      await file.close();
    }
    const a = readFileSync(join(dir, 'a'));
    writeFileSync(join(dir, 'a'), readFileSync(join(dir, 'b')));
    writeFileSync(join(dir, 'b'), a);
    await expectEio(reopen('a', 8), 'wrong-file');
    await expectEio(reopen('b', 9), 'wrong-file');
    // Even with the header's ID rewritten to the expected one, the blocks do not open.
    const forged = readFileSync(join(dir, 'a'));
    keys.fileId(8).copy(forged, 8);
    writeFileSync(join(dir, 'a'), forged);
    await expectEio(reopen('a', 8), 'tampered');
  });

  it('a file cut short is EIO, not a short read', async () => {
    const file = await create('f', 10);
    await file.write(randomBytes(3 * BS), 0);
    await file.close();
    const raw = readFileSync(join(dir, 'f'));
    writeFileSync(join(dir, 'f'), raw.subarray(0, HEADER_BYTES + STRIDE));
    const again = await reopen('f', 10);
    await expectEio(again.read(Buffer.alloc(3 * BS), 0), 'truncated');
    await again.close();
  });

  it('files of the default block size round-trip across their boundaries too', async () => {
    const path = join(dir, 'd');
    const data = randomBytes(3 * 65536 + 17);
    const file = await SealedFile.create(path, keys.fileKey(keys.fileId(12)), keys.fileId(12));
    assert.equal(file.blockSize, 65536);
    await file.write(data.subarray(0, 70000), 0);
    await file.write(data.subarray(70000), 70000);
    await file.close();
    assert.equal(statSync(path).size, HEADER_BYTES + 4 * (65536 + BLOCK_OVERHEAD));
    const again = await SealedFile.open(path, keys.fileKey(keys.fileId(12)), keys.fileId(12));
    assert.deepEqual(await readAll(again), data);
    await again.close();
  });

  it('a write of many runs (sealed and written overlapping) lands whole, over old content, at any offset', async () => {
    const path = join(dir, 'runs');
    const before = randomBytes(2 * 1048576);
    const data = randomBytes(1048576 + 4099);
    const file = await SealedFile.create(path, keys.fileKey(keys.fileId(13)), keys.fileId(13));
    await file.write(before, 0);
    await file.write(data, 65536 * 3 + 1234);
    const model = Buffer.from(before);
    data.copy(model, 65536 * 3 + 1234);
    await file.close();
    const again = await SealedFile.open(path, keys.fileKey(keys.fileId(13)), keys.fileId(13));
    assert.equal(again.size, model.length);
    assert.deepEqual(await readAll(again), model);
    await again.close();
    // Reads go in runs too: a flipped byte or a cut in a later run is still EIO.
    const raw = readFileSync(path);
    const stride = 65536 + BLOCK_OVERHEAD;
    raw[HEADER_BYTES + 21 * stride + 500] = raw[HEADER_BYTES + 21 * stride + 500]! ^ 1;
    writeFileSync(path, raw);
    const flipped = await SealedFile.open(path, keys.fileKey(keys.fileId(13)), keys.fileId(13));
    await expectEio(flipped.read(Buffer.alloc(model.length), 0), 'tampered');
    await flipped.close();
    raw[HEADER_BYTES + 21 * stride + 500] = raw[HEADER_BYTES + 21 * stride + 500]! ^ 1;
    writeFileSync(path, raw.subarray(0, HEADER_BYTES + 26 * stride));
    const cut = await SealedFile.open(path, keys.fileKey(keys.fileId(13)), keys.fileId(13));
    await expectEio(cut.read(Buffer.alloc(model.length), 0), 'truncated');
    await cut.close();
  });

  it('writes answered before they are down land in order: the same blocks written again end as the last write left them', async () => {
    const path = join(dir, 'again');
    const file = await SealedFile.create(path, keys.fileKey(keys.fileId(14)), keys.fileId(14));
    const writes = Array.from({ length: 6 }, () => randomBytes(1048576));
    // Answered and not yet down: counted for the quota's reserve (its blocks with their nonces and tags).
    await file.write(randomBytes(1048576), 0);
    assert.ok(sealedBytesBehind() >= 1048576, `${sealedBytesBehind()} bytes behind`);
    // Not awaited in between: each is answered while the ones before it may still be sealing or going down.
    const answers = writes.map((data, i) => file.write(data, (i % 2) * 1048576));
    assert.deepEqual(await Promise.all(answers), Array(6).fill(1048576));
    assert.equal(file.size, 2 * 1048576);
    // A read waits for them: it sees the last two.
    assert.deepEqual(await readAll(file), Buffer.concat([writes[4]!, writes[5]!]));
    await file.write(writes[0]!, 2 * 1048576);
    await file.close();
    assert.equal(sealedBytesBehind(), 0);
    const again = await SealedFile.open(path, keys.fileKey(keys.fileId(14)), keys.fileId(14));
    assert.deepEqual(await readAll(again), Buffer.concat([writes[4]!, writes[5]!, writes[0]!]));
    await again.close();
  });

  it('a write behind that the stick refuses (full) is reported by the sync and every operation after it; the file keeps what was down before it', async function () {
    if (process.getuid?.() !== 0) this.skip();
    const small = join(dir, 'small');
    mkdirSync(small);
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', small]);
    try {
      const path = join(small, 'full');
      const file = await SealedFile.create(path, keys.fileKey(keys.fileId(15)), keys.fileId(15));
      const first = randomBytes(1048576);
      // The first fits; the second and third do not (1 MiB of blocks each, plus their nonces and tags).
      const answered = await Promise.allSettled([
        file.write(first, 0),
        file.write(randomBytes(1048576), 1048576),
        file.write(randomBytes(1048576), 2 * 1048576),
      ]);
      // The second was answered (behind the first) before the stick refused it.
      assert.deepEqual(
        answered.slice(0, 2).map((a) => a.status),
        ['fulfilled', 'fulfilled'],
      );
      const failed = (error: unknown) => error instanceof ErrnoError && error.errno === Errno.ENOSPC;
      await assert.rejects(file.sync(true), failed);
      await assert.rejects(file.read(Buffer.alloc(16), 0), failed);
      await assert.rejects(file.write(Buffer.alloc(16), 0), failed);
      assert.equal(file.size, 1048576);
      await assert.rejects(file.close(), failed);
      const again = await SealedFile.open(path, keys.fileKey(keys.fileId(15)), keys.fileId(15));
      assert.equal(again.size, 1048576);
      assert.deepEqual(await readAll(again), first);
      await again.close();
    } finally {
      await execa('umount', [small], { reject: false });
    }
  });

  it('another key opens nothing', async () => {
    const file = await create('f', 11);
    await file.write(Buffer.from('secret'), 0);
    await file.close();
    const other = new StoreKeys(randomBytes(32), randomBytes(32));
    try {
      await expectEio(SealedFile.open(join(dir, 'f'), other.fileKey(keys.fileId(11)), keys.fileId(11)), 'tampered');
    } finally {
      other.close();
    }
  });
});
