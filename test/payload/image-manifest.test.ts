// An image guest's manifest (kind "image", docs/images.md): its base is named
// by its sha256 and checked in full before a launch uses it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PayloadError, SystemImageError } from '../../src/errors.ts';
import { parseManifest } from '../../src/payload/guest-manifest.ts';
import { openGuestPayload } from '../../src/payload/guest-payload.ts';
import { validManifest } from './guest-manifest-fixture.ts';

const sha = (data: string) => createHash('sha256').update(data).digest('hex');
const BASE = 'a base file system';
const image = { file: `base-${sha(BASE)}.ext4`, sha256: sha(BASE), bytes: BASE.length, init: '/init' };

function refusal(value: unknown): string {
  try {
    parseManifest(JSON.stringify(value), 'guest.json');
  } catch (error) {
    assert.ok(error instanceof PayloadError);
    return error.message;
  }
  assert.fail('the manifest was accepted');
}

describe('image guest manifest', () => {
  it('defaults to kind payload, and accepts kind image with its base', () => {
    assert.equal(parseManifest(JSON.stringify(validManifest), 'g').kind, 'payload');
    const manifest = parseManifest(JSON.stringify({ ...validManifest, kind: 'image', image }), 'g');
    assert.deepEqual(manifest.image, image);
  });

  it('refuses kind image without a base, a base without kind image, and a file not named by its hash', () => {
    assert.match(refusal({ ...validManifest, kind: 'image' }), /image: required with kind "image"/);
    assert.match(refusal({ ...validManifest, image }), /image: required with kind "image", and only with it/);
    assert.match(refusal({ ...validManifest, kind: 'image', image: { ...image, file: 'base.ext4' } }), /image\.file: must be base-<sha256>\.ext4/);
    assert.match(refusal({ ...validManifest, kind: 'image', image: { ...image, file: '../base.ext4' } }), /image\.file: a plain file name/);
  });

  describe('opening the guest', () => {
    let root: string;
    let dir: string;
    beforeEach(async () => {
      root = await mkdtemp(join(tmpdir(), 'pocketvm-image-manifest-'));
      dir = join(root, 'img');
      await mkdir(dir);
      await writeFile(join(dir, 'guest.json'), JSON.stringify({ ...validManifest, name: 'img', kind: 'image', image }));
      await writeFile(join(dir, 'vmlinuz'), 'kernel');
      await writeFile(join(dir, 'initrd.img'), 'initrd');
      await writeFile(join(dir, 'SHA256SUMS'), `${sha('kernel')}  vmlinuz\n${sha('initrd')}  initrd.img\n`);
    });
    afterEach(() => rm(root, { recursive: true, force: true }));

    it('gives the base with its path, hash and init', async () => {
      await writeFile(join(dir, image.file), BASE);
      const payload = await openGuestPayload(root, 'img');
      assert.deepEqual(payload.base, { path: join(dir, image.file), sha256: image.sha256, bytes: image.bytes, init: '/init' });
    });

    it('refuses a missing base and one whose bytes differ (exit 18)', async () => {
      const reason = (expected: string) => (error: unknown) =>
        error instanceof SystemImageError && error.exitCode === 18 && error.details['reason'] === expected;
      await assert.rejects(openGuestPayload(root, 'img'), reason('missing'));
      await writeFile(join(dir, image.file), BASE.replace('a', 'b'));
      await assert.rejects(openGuestPayload(root, 'img'), reason('corrupt'));
      await writeFile(join(dir, image.file), `${BASE}!`);
      await assert.rejects(openGuestPayload(root, 'img'), reason('corrupt'));
    });
  });
});
