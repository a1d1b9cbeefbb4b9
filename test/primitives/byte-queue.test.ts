// The one byte queue the 9P server, the Ethernet transport and the saved
// state's cipher cut their frames from.
import assert from 'node:assert/strict';
import { ByteQueue } from '../../src/primitives/byte-queue.ts';

describe('byte queue', () => {
  it('peeks and takes across the chunks bytes arrived in', () => {
    const q = new ByteQueue();
    q.push(Buffer.from([0, 0]));
    q.push(Buffer.alloc(0));
    q.push(Buffer.from([0, 7, 1, 2, 3]));
    assert.equal(q.length, 7);
    assert.deepEqual([...q.peek(5)], [0, 0, 0, 7, 1]);
    assert.equal(q.peekUInt32('be'), 7);
    assert.equal(q.peekUInt32('le'), 7 << 24);
    assert.equal(q.length, 7, 'peeking takes nothing');
    assert.deepEqual([...q.take(4)], [0, 0, 0, 7]);
    const inside = q.take(2);
    assert.deepEqual([...inside], [1, 2]);
    assert.deepEqual([...q.take(1)], [3]);
    assert.equal(q.length, 0);
  });

  it('gives an empty buffer from an empty queue (the last, empty, chunk of a stream)', () => {
    const q = new ByteQueue();
    assert.equal(q.take(0).length, 0);
    q.push(Buffer.from('ab'));
    q.clear();
    assert.equal(q.length, 0);
    assert.equal(q.take(0).length, 0);
  });
});
