// `node build.js image`: the console-image guest built from its recipe in a
// scratch checkout (the real payload's initramfs as its tree, real mke2fs),
// its manifest naming the base by hash, a second build skipped, and a changed
// recipe rebuilt. About 3 s.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { buildImage } from '../../build/image.ts';
import { parseManifest } from '../../src/payload/guest-manifest.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const quiet = () => {};

describe('image build (node build.js image)', function () {
  this.timeout(180_000);
  let root: string;
  before(async function () {
    if (!existsSync(join(repo, 'payload', 'default', 'SHA256SUMS'))) this.skip();
    root = await mkdtemp(join(tmpdir(), 'pocketvm-image-build-'));
    await mkdir(join(root, 'payload'), { recursive: true });
    await symlink(join(repo, 'payload', 'default'), join(root, 'payload', 'default'));
    await cp(join(repo, 'images', 'console-image'), join(root, 'images', 'console-image'), { recursive: true });
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('builds an ext4 base of the payload tree with a kind-image manifest naming it by its sha256', async () => {
    const built = await buildImage({ root, guest: 'console-image', onProgress: quiet });
    assert.equal(built.cached, false);
    const manifest = parseManifest(await readFile(join(root, 'payload', 'console-image', 'guest.json'), 'utf8'), 'guest.json');
    assert.equal(manifest.kind, 'image');
    assert.equal(
      manifest.image?.sha256,
      createHash('sha256')
        .update(await readFile(built.base))
        .digest('hex'),
    );
    assert.equal(manifest.image?.file, `base-${built.sha256}.ext4`);
    // The payload's own init is in the file system (debugfs reads it without mounting).
    const { stdout } = await execa('debugfs', ['-R', 'stat /init', built.base], { reject: false });
    assert.match(stdout, /Type: regular/);
  });

  it('skips a build with nothing changed, and rebuilds when the recipe changes', async () => {
    assert.equal((await buildImage({ root, guest: 'console-image', onProgress: quiet })).cached, true);
    const recipePath = join(root, 'images', 'console-image', 'recipe.json');
    const recipe = JSON.parse(await readFile(recipePath, 'utf8')) as { freeMiB: number };
    await writeFile(recipePath, JSON.stringify({ ...recipe, freeMiB: recipe.freeMiB + 8 }));
    const rebuilt = await buildImage({ root, guest: 'console-image', onProgress: quiet });
    assert.equal(rebuilt.cached, false);
  });

  it('refuses an invalid recipe, naming the field', async () => {
    await writeFile(join(root, 'images', 'console-image', 'recipe.json'), JSON.stringify({ schemaVersion: 1, freeMiB: 'lots' }));
    await assert.rejects(buildImage({ root, guest: 'console-image', onProgress: quiet }), /freeMiB/);
  });
});
