import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PayloadError } from '../../src/errors.ts';
import { openGuestPayload, parseChecksums } from '../../src/payload/guest-payload.ts';

const sha = (data: string) => createHash('sha256').update(data).digest('hex');

describe('guest payload verification', () => {
  let root: string;
  let dir: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'pocketvm-payload-'));
    dir = join(root, 'default');
    await mkdir(dir);
    await copyFile(new URL('../../payload/default/guest.json', import.meta.url), join(dir, 'guest.json'));
    await writeFile(join(dir, 'vmlinuz'), 'kernel bytes');
    await writeFile(join(dir, 'initrd.img'), 'initrd bytes');
    await writeFile(join(dir, 'SHA256SUMS'), `${sha('kernel bytes')}  vmlinuz\n${sha('initrd bytes')} *initrd.img\n`);
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it('opens a complete payload', async () => {
    const payload = await openGuestPayload(root, 'default');
    assert.equal(payload.kernel, join(dir, 'vmlinuz'));
    assert.equal(payload.manifest.name, 'default');
  });

  it('names a corrupt file', async () => {
    await writeFile(join(dir, 'initrd.img'), 'initrd bytez');
    await assert.rejects(openGuestPayload(root, 'default'), (error: unknown) => error instanceof PayloadError && /initrd\.img is corrupt/.test(error.message));
  });

  it('names a missing file, and a payload never fully built', async () => {
    await rm(join(dir, 'vmlinuz'));
    await assert.rejects(openGuestPayload(root, 'default'), /vmlinuz is missing/);
    await rm(join(dir, 'SHA256SUMS'));
    await assert.rejects(openGuestPayload(root, 'default'), /has no SHA256SUMS/);
  });

  it('refuses a manifest whose name is not its folder', async () => {
    await mkdir(join(root, 'other'));
    await copyFile(join(dir, 'guest.json'), join(root, 'other', 'guest.json'));
    await assert.rejects(openGuestPayload(root, 'other'), /names the guest "default" but lives in the folder "other"/);
  });

  it('parses sha256sum text and binary lines, ignoring junk', () => {
    const sums = parseChecksums(`${'a'.repeat(64)}  one\n${'b'.repeat(64)} *two\nnot a line\n`);
    assert.deepEqual([...sums.entries()], [['one', 'a'.repeat(64)], ['two', 'b'.repeat(64)]]);
  });
});
