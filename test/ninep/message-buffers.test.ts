import assert from 'node:assert/strict';
import { MessageBufferPool } from '../../src/ninep/message-buffers.ts';

describe('MessageBufferPool', function () {
  it('hands a given-back buffer out again, once, and never one still lent', function () {
    const pool = new MessageBufferPool();
    const a = pool.take(512 * 1024 + 11);
    const b = pool.take(512 * 1024 + 11);
    assert.notEqual(a.buffer, b.buffer, 'two lent at once never share memory');
    assert.equal(a.length, 512 * 1024 + 11);
    pool.giveBack(a.subarray(0, 100)); // a short read's view of it
    pool.giveBack(a); // twice: no effect
    const c = pool.take(300 * 1024);
    assert.equal(c.buffer, a.buffer);
    assert.equal(pool.reused, 1);
    const d = pool.take(300 * 1024);
    assert.notEqual(d.buffer, a.buffer, 'given back twice, still lent out once');
    assert.notEqual(d.buffer, b.buffer);
  });

  it('ignores buffers it did not lend, and leaves small and huge replies to Node', function () {
    const pool = new MessageBufferPool();
    pool.giveBack(Buffer.alloc(512 * 1024));
    const small = pool.take(4096);
    pool.giveBack(small);
    const huge = pool.take(4 * 1024 * 1024);
    assert.equal(huge.length, 4 * 1024 * 1024);
    pool.giveBack(huge);
    pool.take(128 * 1024);
    assert.equal(pool.reused, 0);
  });
});
