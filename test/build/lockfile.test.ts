import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PayloadBuildError } from '../../build/payload/errors.ts';
import { formatLock, readLock, sameLock, writeLock, type PayloadLock } from '../../build/payload/lockfile.ts';
import { checkLockedChecksum } from '../../build/payload/packages.ts';

const sha = (c: string) => c.repeat(64);
const lock: PayloadLock = {
  lockVersion: 1,
  guest: 'default',
  packages: [
    { name: 'libc6', version: '2.36-9', architecture: 'amd64', filename: 'libc6_2.36-9_amd64.deb', sha256: sha('c'), size: 3, role: 'library' },
    {
      name: 'busybox-static',
      version: '1:1.35.0-4',
      architecture: 'amd64',
      filename: 'busybox-static_1.35.0-4_amd64.deb',
      sha256: sha('b'),
      size: 2,
      role: 'recipe',
    },
    {
      name: 'linux-image-6.1.0-56-amd64',
      version: '6.1.192-2',
      architecture: 'amd64',
      filename: 'linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb',
      sha256: sha('a'),
      size: 1,
      role: 'kernel',
    },
  ],
};

describe('payload lock file', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pocketvm-lockfile-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('round-trips, sorted kernel first, then recipe, then libraries', async () => {
    const path = join(dir, 'payload.lock.json');
    await writeLock(path, lock);
    const back = await readLock(path);
    assert.ok(back);
    assert.deepEqual(
      back.packages.map((p) => p.role),
      ['kernel', 'recipe', 'library'],
    );
    assert.ok(sameLock(back, lock), 'order does not make two locks different');
    assert.equal(await readFile(path, 'utf8'), formatLock(lock));
    assert.deepEqual(await readdir(dir), ['payload.lock.json'], 'no temp file left behind');
  });

  it('notices a changed version', () => {
    const changed = { ...lock, packages: lock.packages.map((p) => (p.name === 'libc6' ? { ...p, version: '2.36-10' } : p)) };
    assert.equal(sameLock(lock, changed), false);
    assert.equal(sameLock(undefined, lock), false);
  });

  it('is undefined when absent, and a PayloadBuildError when malformed', async () => {
    assert.equal(await readLock(join(dir, 'none.json')), undefined);
    const path = join(dir, 'bad.json');
    await writeFile(path, '{ not json');
    await assert.rejects(readLock(path), (e: unknown) => e instanceof PayloadBuildError && /not valid JSON/.test(e.message));
    const broken = JSON.parse(formatLock(lock));
    broken.packages[0].sha256 = 'xyz';
    await writeFile(path, JSON.stringify(broken));
    await assert.rejects(readLock(path), (e: unknown) => e instanceof PayloadBuildError && /packages\.0\.sha256/.test(e.message));
  });

  it('treats a different sha256 for the same version as a hard error', () => {
    const [kernel] = lock.packages.filter((p) => p.role === 'kernel');
    assert.ok(kernel);
    const record = { name: kernel.name, version: kernel.version, architecture: 'amd64', filename: kernel.filename, sha256: kernel.sha256, size: kernel.size };
    assert.doesNotThrow(() => checkLockedChecksum(kernel, record));
    assert.throws(
      () => checkLockedChecksum(kernel, { ...record, sha256: sha('f') }),
      (e: unknown) => e instanceof PayloadBuildError && e.exitCode === 4 && /sha256 mismatch for linux-image/.test(e.message),
    );
  });
});
