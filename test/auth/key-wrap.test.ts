import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { newDiskKey, unwrapKey, UnwrapError, wrapKey } from '../../src/auth/key-wrap.ts';

describe('key wrap (AES-256-GCM)', () => {
  const kek = randomBytes(32);
  const key = newDiskKey();

  it('round-trips a 256-bit key, with a fresh IV each time', () => {
    const a = wrapKey(key, kek, 'pocketvm-user:alice:1');
    const b = wrapKey(key, kek, 'pocketvm-user:alice:1');
    assert.equal(key.length, 32);
    assert.notEqual(a.iv, b.iv);
    assert.notEqual(a.ciphertext, b.ciphertext);
    assert.deepEqual(unwrapKey(a, kek, 'pocketvm-user:alice:1'), key);
  });

  it("fails on a wrong key, a flipped bit anywhere, or another user's associated data", () => {
    const wrapped = wrapKey(key, kek, 'pocketvm-user:alice:1');
    assert.throws(() => unwrapKey(wrapped, randomBytes(32), 'pocketvm-user:alice:1'), UnwrapError);
    assert.throws(() => unwrapKey(wrapped, kek, 'pocketvm-user:bob:2'), UnwrapError);
    for (const field of ['iv', 'tag', 'ciphertext'] as const) {
      const bytes = Buffer.from(wrapped[field], 'base64');
      bytes[0] = bytes[0]! ^ 1;
      assert.throws(() => unwrapKey({ ...wrapped, [field]: bytes.toString('base64') }, kek, 'pocketvm-user:alice:1'), UnwrapError, field);
    }
    assert.throws(() => unwrapKey({ ...wrapped, ciphertext: '' }, kek, 'pocketvm-user:alice:1'), UnwrapError);
  });
});
