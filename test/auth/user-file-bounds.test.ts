// A hand-edited user.json (its checksum recomputed, as anyone can) must not
// make a login allocate gigabytes or run for hours: the KDF parameters are
// bounded when the file is parsed, before argon2 ever runs; a user.json that
// is a folder is a corrupt user file too, not "internal error".
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KDF_BOUNDS, MINIMUM_KDF } from '../../src/auth/passphrase.ts';
import { sealUserFile, type UserFile } from '../../src/auth/user-file.ts';
import { addUser, listUsers, login, removeUser, userPaths } from '../../src/auth/users.ts';
import { AuthError } from '../../src/errors.ts';
import { stickLayout, type StickLayout } from '../../src/stick/layout.ts';

describe('user.json: KDF parameters bounded before any work', function () {
  this.timeout(30_000);
  let parent: string;
  let layout: StickLayout;
  let original: string;
  before(async () => {
    parent = await mkdtemp(join(tmpdir(), 'pocketvm-kdf-bounds-'));
    layout = stickLayout(parent);
    await mkdir(layout.usersRoot);
    await addUser(layout, 'alice', 'alice passphrase', { params: MINIMUM_KDF });
    original = await readFile(userPaths(layout, 'alice').file, 'utf8');
  });
  after(() => rm(parent, { recursive: true, force: true }));

  async function withKdf(change: Partial<UserFile['kdf']>): Promise<void> {
    const path = userPaths(layout, 'alice').file;
    const { checksum: _old, ...content } = JSON.parse(original) as UserFile;
    await writeFile(path, JSON.stringify(sealUserFile({ ...content, kdf: { ...content.kdf, ...change } }), null, 2));
  }

  const cases: Array<[string, Partial<UserFile['kdf']>, RegExp]> = [
    ['memoryCost 2^32-1', { memoryCost: 2 ** 32 - 1 }, /kdf\.memoryCost: over the 1048576 KiB/],
    ['timeCost 10^8', { timeCost: 1e8 }, /kdf\.timeCost: over the 40 passes/],
    ['parallelism 2^24', { parallelism: 2 ** 24 }, /kdf\.parallelism: over the 16 lanes/],
    ['memoryCost 4 KiB', { memoryCost: 4 }, /kdf\.memoryCost: below 8 KiB/],
    ['memoryCost under 8 KiB a lane', { memoryCost: 16, parallelism: 4 }, /8 KiB per lane/],
  ];
  for (const [what, change, message] of cases) {
    it(`${what}: refused as a corrupt user file (exit 11) at once, argon2 never runs`, async () => {
      await withKdf(change);
      const started = performance.now();
      await assert.rejects(
        login(layout, 'alice', 'alice passphrase'),
        (error: unknown) =>
          error instanceof AuthError && error.exitCode === 11 && error.details['reason'] === 'corrupt-user-file' && message.test(error.message),
      );
      assert.ok(performance.now() - started < 2_000, 'refused before deriving');
    });
  }

  it('the bounds are above what calibration ever picks', () => {
    assert.ok(KDF_BOUNDS.memoryCost.max >= 256 * 1024 && KDF_BOUNDS.timeCost.max >= 10);
  });

  it('a user.json that is a folder: a corrupt user file (exit 11) for login and list; remove still removes the user', async () => {
    await addUser(layout, 'bob', 'bob passphrase', { params: MINIMUM_KDF });
    const path = userPaths(layout, 'bob').file;
    await rm(path);
    await mkdir(path);
    await assert.rejects(
      login(layout, 'bob', 'bob passphrase'),
      (error: unknown) => error instanceof AuthError && error.details['reason'] === 'corrupt-user-file' && /is a folder, not a file/.test(error.message),
    );
    const listed = (await listUsers(layout)).find((user) => user.name === 'bob');
    assert.match(listed?.problem ?? '', /is a folder/);
    await removeUser(layout, 'bob');
  });
});
