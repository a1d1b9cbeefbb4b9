// The passphrase as bytes (src/auth/passphrase.ts): the policy reads Buffers as
// it read strings, a Buffer derives the same key a string did before (so
// existing users still log in), the caller's Buffer is left for its owner, and
// the bytes argon2 reads are zeroed once the key is derived, not copied by
// argon2's JavaScript first.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { checkPassphrasePolicy, deriveKek, kdfInput, MINIMUM_KDF, PASSPHRASE_POLICY, passphraseBytes, samePassphrase } from '../../src/auth/passphrase.ts';
import { UsageError } from '../../src/errors.ts';

// The module object deriveKek's import('argon2') returns (CommonJS: one per process).
const argon2 = createRequire(import.meta.url)('argon2') as typeof import('argon2');
const salt = Buffer.alloc(16, 7);

/** What the argon2 of before (a normalized string) derives. */
const before = (text: string) => argon2.hash(text.normalize('NFC'), { type: argon2.argon2id, raw: true, hashLength: 32, salt, ...MINIMUM_KDF });

describe('passphrase bytes: policy, derivation, zeroing', function () {
  this.timeout(30_000);

  it('the policy over Buffers: same verdicts as over strings, counting characters, not bytes', () => {
    for (const bad of ['', 'short', 'x'.repeat(1025), 'two\nlines!', 'cr\rinside!']) {
      assert.throws(
        () => checkPassphrasePolicy(Buffer.from(bad)),
        (error: unknown) => error instanceof UsageError && error.hint === PASSPHRASE_POLICY,
      );
    }
    checkPassphrasePolicy(Buffer.from('12345678'));
    // 8 characters, 16 bytes: long enough; 1024 two-byte characters: not too long.
    checkPassphrasePolicy(Buffer.from('ääääääää'));
    checkPassphrasePolicy(Buffer.from('é'.repeat(1024)));
    assert.throws(() => checkPassphrasePolicy(Buffer.from('äääää')), /too short/);
  });

  it("a Buffer derives the key the string derived before (ASCII, and non-ASCII typed decomposed); the caller's Buffer is left as it was", async () => {
    for (const text of ['correct horse battery', 'cafe\u0301 crème brûlée']) {
      const bytes = passphraseBytes(text);
      const copy = Buffer.from(bytes);
      assert.deepEqual(await deriveKek(bytes, salt, MINIMUM_KDF), await before(text));
      assert.deepEqual(bytes, copy);
    }
    assert.deepEqual(await deriveKek('plain string', salt, MINIMUM_KDF), await before('plain string'));
  });

  it('what argon2 reads is zeroed once the key is derived, and argon2 gets no copy of its own', async () => {
    const expected = await before('correct horse battery');
    const original = argon2.hash;
    const seen: unknown[] = [];
    (argon2 as { hash: unknown }).hash = (password: unknown, options: unknown) => {
      seen.push(password);
      return (original as (p: unknown, o: unknown) => Promise<Buffer>)(password, options);
    };
    try {
      const kek = await deriveKek(passphraseBytes('correct horse battery'), salt, MINIMUM_KDF);
      assert.deepEqual(kek, expected);
    } finally {
      (argon2 as { hash: unknown }).hash = original;
    }
    assert.equal(seen.length, 1);
    // An ArrayBuffer, which argon2's Buffer.from wraps without copying (a Buffer it would copy).
    assert.ok(seen[0] instanceof ArrayBuffer, `argon2 was given ${Object.prototype.toString.call(seen[0])}`);
    const read = new Uint8Array(seen[0]);
    assert.equal(read.length, 'correct horse battery'.length);
    assert.ok(
      read.every((byte) => byte === 0),
      'zeroed after use',
    );
  });

  it('kdfInput: memory of its own (not the shared pool), NFC bytes', () => {
    const input = kdfInput(Buffer.from('cafe\u0301 au lait'));
    assert.equal(input.buffer.byteLength, input.length);
    assert.deepEqual(input, Buffer.from('caf\u00e9 au lait'));
    const ascii = kdfInput(Buffer.from('plain ascii'));
    assert.equal(ascii.buffer.byteLength, ascii.length);
    assert.ok(samePassphrase(passphraseBytes('same one'), Buffer.from('same one')));
    assert.ok(!samePassphrase(passphraseBytes('same one'), Buffer.from('same on')));
  });
});
