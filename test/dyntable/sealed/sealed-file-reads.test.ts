// The sealed file's read path (sealed-file.ts): blocks opened on the cipher
// workers (cipher-pool.ts), the last read's blocks kept for the next read and
// the next blocks read ahead while reads go in order. What is kept must never
// outlive a change, and a block that does not authenticate is refused
// whichever way it is reached.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readSync, rmSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Errno } from '../../../src/ninep/backend.ts';
import { closePool } from '../../../src/dyntable/sealed/cipher-pool.ts';
import { StoreKeys } from '../../../src/dyntable/sealed/keys.ts';
import {
  BLOCK_OVERHEAD,
  DEFAULT_BLOCK_SHIFT,
  HEADER_BYTES,
  SealedDataError,
  SealedFile,
  sealedReadCounters,
} from '../../../src/dyntable/sealed/sealed-file.ts';

const BS = 1 << DEFAULT_BLOCK_SHIFT;
const STRIDE = BS + BLOCK_OVERHEAD;
const MIB = 1 << 20;

describe('sealed file reads (kept blocks, read ahead, cipher workers)', () => {
  let dir: string;
  let keys: StoreKeys;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sealed-reads-'));
    keys = new StoreKeys(randomBytes(32), randomBytes(32));
  });
  afterEach(() => {
    keys.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const create = (node: number) => SealedFile.create(join(dir, `f${node}`), keys.fileKey(keys.fileId(node)), keys.fileId(node));
  const reopen = (node: number) => SealedFile.open(join(dir, `f${node}`), keys.fileKey(keys.fileId(node)), keys.fileId(node));
  /** Flips one bit of block `index`'s ciphertext on disk. */
  const flip = (node: number, index: number) => {
    const fd = openSync(join(dir, `f${node}`), 'r+');
    const at = HEADER_BYTES + index * STRIDE + 12 + 100;
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, at);
    byte[0] = byte[0]! ^ 1;
    writeSync(fd, byte, 0, 1, at);
    closeSync(fd);
  };
  const counters = () => ({ ...sealedReadCounters });
  const expectEio = async (promise: Promise<unknown>) => {
    await assert.rejects(promise, (error: unknown) => error instanceof SealedDataError && error.errno === Errno.EIO && error.problem === 'tampered');
  };

  it('reading in order is served from blocks read ahead, byte for byte', async () => {
    const data = randomBytes(4 * MIB + 12_345);
    const file = await create(1);
    await file.write(data, 0);
    await file.close();
    const again = await reopen(1);
    const before = counters();
    const out = Buffer.alloc(data.length);
    for (let at = 0; at < data.length; at += MIB) assert.equal(await again.read(out.subarray(at, at + MIB), at), Math.min(MIB, data.length - at));
    assert.deepEqual(out, data);
    const after = counters();
    // The first read opens its blocks; every later one finds its own runs read ahead (each read tops the read ahead up).
    assert.equal(after.opened - before.opened, 1);
    assert.equal(after.ahead - before.ahead, 4);
    assert.equal(after.kept - before.kept, 0);
    await again.close();
  });

  it('reads smaller than a block come from the block kept by the read before', async () => {
    const data = randomBytes(3 * BS);
    const file = await create(2);
    await file.write(data, 0);
    const before = counters();
    const out = Buffer.alloc(data.length);
    for (let at = 0; at < data.length; at += 4096) await file.read(out.subarray(at, at + 4096), at);
    assert.deepEqual(out, data);
    const after = counters();
    assert.equal(after.opened - before.opened, 1, 'only the first read opens blocks');
    assert.equal(after.kept + after.ahead - before.kept - before.ahead, data.length / 4096 - 1);
    await file.close();
  });

  it('small reads in order across block ends go on from the read ahead, opening nothing more', async () => {
    const data = randomBytes(3 * BS + 777);
    const file = await create(5);
    await file.write(data, 0);
    const before = counters();
    const out = Buffer.alloc(data.length);
    for (let at = 0; at < data.length; at += 1000) await file.read(out.subarray(at, at + 1000), at);
    assert.deepEqual(out, data);
    assert.equal(counters().opened - before.opened, 1, 'only the first read opens blocks');
    await file.close();
  });

  it('a tampered block reached through the read ahead is still EIO, and the reader gets zeros, not the blocks before it', async () => {
    const data = randomBytes(6 * MIB);
    const file = await create(3);
    await file.write(data, 0);
    await file.close();
    // In the fifth MiB: reading in order, it is read ahead (with the blocks around it) before it is asked for.
    const bad = 4 * MIB + 70_000;
    flip(3, Math.floor(bad / BS));
    const again = await reopen(3);
    const before = counters();
    const out = Buffer.alloc(MIB);
    for (let at = 0; at < 4 * MIB; at += MIB) {
      await again.read(out, at);
      assert.deepEqual(out, data.subarray(at, at + MIB));
    }
    assert.ok(counters().ahead - before.ahead >= 1);
    out.fill(0xee);
    await expectEio(again.read(out, 4 * MIB));
    assert.equal(out.equals(Buffer.alloc(MIB)), true, 'the target is zeroed');
    // Read again out of order (no read ahead): refused the same way.
    await expectEio(again.read(Buffer.alloc(10), bad));
    // The blocks before it still read.
    const head = Buffer.alloc(BS);
    await again.read(head, 4 * MIB);
    assert.deepEqual(head, data.subarray(4 * MIB, 4 * MIB + BS));
    await again.close();
  });

  it('a write after a read is seen by the next read, in the blocks kept and in those read ahead', async () => {
    const data = randomBytes(3 * MIB);
    const file = await create(4);
    await file.write(data, 0);
    const out = Buffer.alloc(MIB);
    // Keeps the first MiB, reads the second ahead.
    await file.read(out, 0);
    await file.write(Buffer.from('changed in the kept blocks'), 1000);
    await file.write(Buffer.from('changed in the blocks read ahead'), MIB + 5000);
    data.write('changed in the kept blocks', 1000);
    data.write('changed in the blocks read ahead', MIB + 5000);
    await file.read(out, 0);
    assert.deepEqual(out, data.subarray(0, MIB));
    await file.read(out, MIB);
    assert.deepEqual(out, data.subarray(MIB, 2 * MIB));
    // A truncate down and up after a read: the cut bytes read back as zeros.
    await file.read(out, 0);
    await file.truncate(100);
    await file.truncate(2 * MIB);
    await file.read(out, 0);
    assert.deepEqual(out.subarray(0, 100), data.subarray(0, 100));
    assert.equal(out.subarray(100).equals(Buffer.alloc(MIB - 100)), true);
    await file.read(out, MIB);
    assert.equal(out.equals(Buffer.alloc(MIB)), true);
    await file.close();
    // And as the next session reads it.
    const again = await reopen(4);
    const whole = Buffer.alloc(2 * MIB);
    await again.read(whole, 0);
    assert.deepEqual(whole.subarray(0, 100), data.subarray(0, 100));
    assert.equal(whole.subarray(100).equals(Buffer.alloc(2 * MIB - 100)), true);
    await again.close();
  });

  it('a file read again after forgetOpened opens its blocks again (nothing is kept for an idle file)', async () => {
    const data = randomBytes(2 * BS);
    const file = await create(5);
    await file.write(data, 0);
    await file.read(Buffer.alloc(100), 0);
    await file.forgetOpened();
    const before = counters();
    const out = Buffer.alloc(100);
    await file.read(out, 50);
    assert.deepEqual(out, data.subarray(50, 150));
    assert.equal(counters().opened - before.opened, 1);
    await file.close();
  });

  it('the cipher workers ended between two reads: new ones take over', async () => {
    const data = randomBytes(2 * MIB);
    const file = await create(6);
    await file.write(data, 0);
    const out = Buffer.alloc(MIB);
    await file.read(out, 0);
    closePool();
    await file.write(Buffer.from('after the pool closed'), 10);
    data.write('after the pool closed', 10);
    await file.read(out, 0);
    assert.deepEqual(out, data.subarray(0, MIB));
    await file.read(out, MIB);
    assert.deepEqual(out, data.subarray(MIB));
    await file.close();
  });
});
