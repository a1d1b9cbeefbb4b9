import assert from 'node:assert/strict';
import { calibrate, checkPassphrasePolicy, deriveKek, meetsMinimum, MINIMUM_KDF, PASSPHRASE_POLICY } from '../../src/auth/passphrase.ts';
import { UsageError } from '../../src/errors.ts';

describe('passphrase: policy and argon2id', function () {
  this.timeout(30_000);

  it('the policy refuses empty, short, over-long and multi-line passphrases, naming the rule in one line', () => {
    for (const bad of ['', 'short', 'x'.repeat(1025), 'two\nlines!']) {
      assert.throws(
        () => checkPassphrasePolicy(bad),
        (error: unknown) => error instanceof UsageError && error.hint === PASSPHRASE_POLICY && !PASSPHRASE_POLICY.includes('\n'),
      );
    }
    assert.throws(() => checkPassphrasePolicy(''), /empty/);
    assert.throws(() => checkPassphrasePolicy('1234567'), /too short/);
    checkPassphrasePolicy('12345678');
    checkPassphrasePolicy('ünïcödé pässphrase');
  });

  it('derives a 32-byte key that depends on passphrase, salt and parameters', async () => {
    const salt = Buffer.alloc(16, 7);
    const a = await deriveKek('correct horse', salt, MINIMUM_KDF);
    assert.equal(a.length, 32);
    assert.deepEqual(await deriveKek('correct horse', salt, MINIMUM_KDF), a);
    assert.notDeepEqual(await deriveKek('correct horsf', salt, MINIMUM_KDF), a);
    assert.notDeepEqual(await deriveKek('correct horse', Buffer.alloc(16, 8), MINIMUM_KDF), a);
    assert.notDeepEqual(await deriveKek('correct horse', salt, { ...MINIMUM_KDF, timeCost: 3 }), a);
  });

  it('calibration never goes below the OWASP minimum (19 MiB, t=2, p=1)', async () => {
    for (const target of [1, 200]) {
      const params = await calibrate(target);
      assert.ok(meetsMinimum(params), JSON.stringify(params));
      assert.equal(params.parallelism, 1);
    }
    assert.ok(!meetsMinimum({ memoryCost: 4096, timeCost: 3, parallelism: 1 }));
    assert.ok(!meetsMinimum({ memoryCost: 19_456, timeCost: 1, parallelism: 1 }));
  });
});
