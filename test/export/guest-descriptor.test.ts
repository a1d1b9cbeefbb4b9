// What `launcher export` is asked to export: a guest made from a catalog image
// (guest create --from) is refused with one line naming the commands that do
// move its image (image adapt, image deploy), before anything is read or written.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { describeGuest } from '../../src/export/guest-descriptor.ts';
import { PocketError } from '../../src/errors.ts';
import { guestPaths } from '../../src/guests/guest-store.ts';
import { stickLayout } from '../../src/stick/layout.ts';
import { removeDir, tempDir } from '../dyntable/helpers.ts';

describe('describeGuest', () => {
  let root: string;
  beforeEach(() => {
    root = tempDir('pocketvm-describe-');
  });
  afterEach(() => removeDir(root));

  it('refuses a guest made from a catalog image, naming the image and what moves it', async () => {
    const layout = stickLayout(root);
    const paths = guestPaths(layout, 'deb');
    mkdirSync(paths.dir, { recursive: true });
    const source = { kind: 'image', name: 'debian-web', sha256: 'a'.repeat(64) };
    writeFileSync(paths.record, JSON.stringify({ format: 1, name: 'deb', source, config: {}, createdAt: new Date().toISOString() }));
    await assert.rejects(describeGuest(layout, 'deb'), (error: unknown) => {
      assert.ok(error instanceof PocketError, String(error));
      assert.equal(error.exit, 'exportSource');
      assert.equal(error.details.reason, 'catalog-image');
      assert.match(error.message, /catalog image debian-web/);
      assert.match(error.hint ?? '', /image adapt debian-web --for/);
      assert.equal(error.message.includes('\n'), false, 'one line');
      return true;
    });
  });

  it('refuses a name that is neither a guest nor a payload', async () => {
    await assert.rejects(describeGuest(stickLayout(root), 'nobody'), (error: unknown) => {
      assert.ok(error instanceof PocketError);
      assert.equal(error.details.reason, 'no-guest');
      return true;
    });
  });
});
