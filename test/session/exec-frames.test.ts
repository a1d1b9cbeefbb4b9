// The exec stream's frames (src/session/exec-frames.ts), as the guest's
// pocketvm-execd reads and writes them.
import assert from 'node:assert/strict';
import { encodeFrame, encodeStart, FrameReader, MAX_FRAME_BYTES } from '../../src/session/exec-frames.ts';

describe('exec frames', () => {
  it('round-trips frames split at every byte boundary', () => {
    const bytes = Buffer.concat([encodeFrame('O', 7, Buffer.from('hello')), encodeFrame('I', 7), encodeFrame('X', 0xfffffffe, Buffer.alloc(8, 1))]);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const reader = new FrameReader();
      const frames = [...reader.push(bytes.subarray(0, cut)), ...reader.push(bytes.subarray(cut))];
      assert.deepEqual(
        frames.map((f) => [f.type, f.id, f.payload.toString('hex')]),
        [
          ['O', 7, Buffer.from('hello').toString('hex')],
          ['I', 7, ''],
          ['X', 0xfffffffe, '0101010101010101'],
        ],
      );
    }
  });

  it('refuses a frame longer than either end sends', () => {
    const head = Buffer.alloc(9);
    head.writeUInt32LE(MAX_FRAME_BYTES + 1);
    assert.throws(() => new FrameReader().push(head), /not ours/);
  });

  it('lays a start request out as the guest parses it: ids, counts, then NUL-ended strings', () => {
    const start = encodeStart({ uid: 1000, gid: 1000, cwd: '/home/a', argv: ['sh', '-c', 'echo'], env: { HOME: '/home/a' } });
    assert.equal(start.readUInt32LE(0), 1000);
    assert.equal(start.readUInt32LE(8), 3);
    assert.equal(start.readUInt32LE(12), 1);
    assert.equal(start.subarray(16).toString(), '/home/a\0sh\0-c\0echo\0HOME=/home/a\0');
    assert.throws(() => encodeStart({ uid: 0, gid: 0, cwd: '/', argv: ['a\0b'], env: {} }), /NUL/);
  });
});
