import assert from 'node:assert/strict';
import { removeMachoSignature } from '../../build/stick/macho-signature.ts';

/** A Mach-O 64 header with the given load commands (cmd, size). */
function macho(commands: Array<[number, number]>): Buffer {
  const size = commands.reduce((sum, [, s]) => sum + s, 0);
  const buf = Buffer.alloc(32 + size + 64);
  buf.writeUInt32LE(0xfeedfacf, 0);
  buf.writeUInt32LE(commands.length, 16);
  buf.writeUInt32LE(size, 20);
  let at = 32;
  for (const [cmd, s] of commands) {
    buf.writeUInt32LE(cmd, at);
    buf.writeUInt32LE(s, at + 4);
    buf.fill(cmd & 0xff, at + 8, at + s);
    at += s;
  }
  return buf;
}

describe('Mach-O signature removal (before injecting the SEA blob)', () => {
  it('drops LC_CODE_SIGNATURE and keeps the other load commands in order', () => {
    const buf = macho([
      [0x19, 72],
      [0x1d, 16],
      [0x2, 24],
    ]);
    assert.deepEqual(removeMachoSignature(buf), { removed: true });
    assert.equal(buf.readUInt32LE(16), 2);
    assert.equal(buf.readUInt32LE(20), 96);
    assert.equal(buf.readUInt32LE(32), 0x19);
    assert.equal(buf.readUInt32LE(32 + 72), 0x2);
    assert.equal(buf.readUInt32LE(32 + 72 + 4), 24);
    assert.ok(
      buf.subarray(32 + 96, 32 + 112).every((b) => b === 0),
      'the freed bytes are zero',
    );
  });

  it('leaves an unsigned binary alone, and refuses what is not a thin Mach-O 64', () => {
    const buf = macho([[0x19, 72]]);
    const before = Buffer.from(buf);
    assert.deepEqual(removeMachoSignature(buf), { removed: false });
    assert.deepEqual(buf, before);
    assert.throws(() => removeMachoSignature(Buffer.from('\x7fELF-not-a-mach-o-binary-at-all-here')), /Mach-O/);
  });
});
