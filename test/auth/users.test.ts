// Users on a stick folder, without booting anything (fast argon2 parameters).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MINIMUM_KDF } from '../../src/auth/passphrase.ts';
import { parseUserFile, userFileChecksum } from '../../src/auth/user-file.ts';
import { addUser, changePassphrase, listUsers, login, removeUser, userPaths } from '../../src/auth/users.ts';
import { AuthError, UsageError } from '../../src/errors.ts';
import { stickLayout, type StickLayout } from '../../src/stick/layout.ts';

const fast = { params: MINIMUM_KDF };

function authReason(reason: string) {
  return (error: unknown) => error instanceof AuthError && error.exitCode === 11 && error.details['reason'] === reason;
}

describe('users (user.json, login, passwd, remove)', function () {
  this.timeout(30_000);
  let parent: string;
  let layout: StickLayout;
  beforeEach(async () => {
    parent = await mkdtemp(join(tmpdir(), 'pocketvm-users-'));
    layout = stickLayout(parent);
    await mkdir(layout.usersRoot);
  });
  afterEach(() => rm(parent, { recursive: true, force: true }));

  it('add then login unwraps the same 32-byte key; the file records argon2id parameters and a version', async () => {
    const { file } = await addUser(layout, 'alice', 'alice passphrase', fast);
    assert.equal(file.version, 1);
    assert.equal(file.kdf.algorithm, 'argon2id');
    assert.equal(file.kdf.memoryCost, MINIMUM_KDF.memoryCost);
    const a = await login(layout, 'alice', 'alice passphrase', fast);
    const b = await login(layout, 'alice', 'alice passphrase', fast);
    assert.equal(a.diskKey.length, 32);
    assert.deepEqual(a.diskKey, b.diskKey);
    assert.equal(a.rehashed, false);
    assert.ok(existsSync(userPaths(layout, 'alice').disksDir));
  });

  it('the default (calibrated) parameters are at or above the OWASP minimum', async () => {
    const { file } = await addUser(layout, 'carol', 'carol passphrase');
    assert.ok(file.kdf.memoryCost >= 19_456 && file.kdf.timeCost >= 2 && file.kdf.parallelism === 1, JSON.stringify(file.kdf));
  });

  it('bad input: invalid or unknown names, empty and too-short passphrases, an existing user', async () => {
    await assert.rejects(addUser(layout, 'Alice!', 'alice passphrase', fast), UsageError);
    await assert.rejects(addUser(layout, 'alice', '', fast), /empty/);
    await assert.rejects(addUser(layout, 'alice', 'short', fast), /too short/);
    await addUser(layout, 'alice', 'alice passphrase', fast);
    await assert.rejects(addUser(layout, 'alice', 'alice passphrase', fast), /already exists/);
    await assert.rejects(login(layout, 'nobody', 'whatever1', fast), authReason('unknown-user'));
    await assert.rejects(login(layout, 'alice', '', fast), /empty/);
  });

  it('wrong passphrases back off progressively (state on the stick), and a success resets it', async () => {
    await addUser(layout, 'alice', 'alice passphrase', fast);
    await assert.rejects(
      login(layout, 'alice', 'wrong one 1', fast),
      (e: unknown) => authReason('wrong-passphrase')(e) && /1 failed attempt in a row/.test((e as Error).message),
    );
    await assert.rejects(login(layout, 'alice', 'wrong one 2', fast), /you may try again now/);
    await assert.rejects(login(layout, 'alice', 'wrong one 3', fast), /next attempt is allowed in 2 s/);
    // Even the right passphrase waits its turn.
    await assert.rejects(
      login(layout, 'alice', 'alice passphrase', fast),
      (e: unknown) => authReason('backoff')(e) && (e as AuthError).details['waitSeconds'] === 2,
    );
    await new Promise((r) => setTimeout(r, 2_100));
    await login(layout, 'alice', 'alice passphrase', fast);
    assert.ok(!existsSync(userPaths(layout, 'alice').backoff));
  });

  it('passwd re-wraps the same key under the new passphrase; the old one stops working', async () => {
    const { file: before } = await addUser(layout, 'alice', 'old passphrase', fast);
    const key = (await login(layout, 'alice', 'old passphrase', fast)).diskKey;
    const { file: after } = await changePassphrase(layout, 'alice', 'old passphrase', 'new passphrase', fast);
    assert.equal(after.id, before.id);
    assert.notEqual(after.kdf.salt, before.kdf.salt);
    assert.deepEqual((await login(layout, 'alice', 'new passphrase', fast)).diskKey, key);
    await assert.rejects(login(layout, 'alice', 'old passphrase', fast), authReason('wrong-passphrase'));
  });

  it("one user's wrapped key does not open in another user's file, even with the same passphrase", async () => {
    await addUser(layout, 'alice', 'same passphrase', fast);
    await addUser(layout, 'bob', 'same passphrase', fast);
    const alice = JSON.parse(await readFile(userPaths(layout, 'alice').file, 'utf8'));
    const bobPath = userPaths(layout, 'bob').file;
    const bob = JSON.parse(await readFile(bobPath, 'utf8'));
    // A careful forger even fixes the checksum: the GCM tag still refuses.
    const forged = { ...bob, kdf: alice.kdf, wrappedKey: alice.wrappedKey };
    forged.checksum = userFileChecksum(forged);
    await writeFile(bobPath, JSON.stringify(forged));
    await assert.rejects(login(layout, 'bob', 'same passphrase', fast), authReason('wrong-passphrase'));
  });

  it('a hand-edited or corrupt user.json is reported (schema, checksum) and never rewritten', async () => {
    await addUser(layout, 'alice', 'alice passphrase', fast);
    const path = userPaths(layout, 'alice').file;
    const original = await readFile(path, 'utf8');
    const edited = original.replace(/"timeCost": \d+/, '"timeCost": 1');
    await writeFile(path, edited);
    await assert.rejects(
      login(layout, 'alice', 'alice passphrase', fast),
      (e: unknown) => authReason('corrupt-user-file')(e) && /checksum does not match/.test((e as Error).message),
    );
    assert.equal(await readFile(path, 'utf8'), edited);
    await writeFile(path, original.replace('"argon2id"', '"argon2i"'));
    await assert.rejects(login(layout, 'alice', 'alice passphrase', fast), /kdf\.algorithm/);
    await writeFile(path, '{ not json');
    await assert.rejects(login(layout, 'alice', 'alice passphrase', fast), /is not JSON/);
    assert.throws(() => parseUserFile(original, path, 'bob'), /belongs to "alice"/);
    const listed = await listUsers(layout);
    assert.equal(listed.length, 1);
    assert.match(listed[0]!.problem ?? '', /not JSON/);
  });

  it('a file under an older KDF policy is re-hashed on the next login, keeping the key', async () => {
    await addUser(layout, 'alice', 'alice passphrase', fast);
    const key = (await login(layout, 'alice', 'alice passphrase', fast)).diskKey;
    const path = userPaths(layout, 'alice').file;
    // Simulate a file written with weaker, older parameters (below the minimum).
    const { deriveKek } = await import('../../src/auth/passphrase.ts');
    const { wrapKey } = await import('../../src/auth/key-wrap.ts');
    const file = JSON.parse(await readFile(path, 'utf8'));
    const weak = { memoryCost: 8192, timeCost: 1, parallelism: 1 };
    const salt = Buffer.alloc(16, 3);
    file.kdf = { ...file.kdf, ...weak, salt: salt.toString('base64') };
    file.wrappedKey = { algorithm: 'aes-256-gcm', ...wrapKey(key, await deriveKek('alice passphrase', salt, weak), `pocketvm-user:alice:${file.id}`) };
    file.checksum = userFileChecksum(file);
    await writeFile(path, JSON.stringify(file));
    const again = await login(layout, 'alice', 'alice passphrase', fast);
    assert.equal(again.rehashed, true);
    assert.deepEqual(again.diskKey, key);
    const upgraded = JSON.parse(await readFile(path, 'utf8'));
    assert.equal(upgraded.kdf.memoryCost, MINIMUM_KDF.memoryCost);
    assert.equal((await login(layout, 'alice', 'alice passphrase', fast)).rehashed, false);
  });

  it("remove destroys the wrapped key and the user's disks", async () => {
    await addUser(layout, 'alice', 'alice passphrase', fast);
    const paths = userPaths(layout, 'alice');
    await writeFile(join(paths.disksDir, 'default.qcow2'), 'disk');
    await removeUser(layout, 'alice');
    assert.ok(!existsSync(paths.dir));
    await assert.rejects(login(layout, 'alice', 'alice passphrase', fast), authReason('unknown-user'));
    await assert.rejects(removeUser(layout, 'alice'), authReason('unknown-user'));
  });
});
