// init-stick on a disk too small for the payload (a 4 MiB tmpfs): the stick it
// half-made is removed again, so nothing that looks like a stick stays behind.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { StickError } from '../../src/errors.ts';
import { initStick } from '../../src/stick/init-stick.ts';
import { sourcePayloadRoot } from '../../src/cli/bootstrap.ts';

describe('init-stick on a full disk', function () {
  this.timeout(60_000);
  let parent: string;
  let small: string;
  before(async function () {
    if (process.getuid?.() !== 0 || !existsSync(join(sourcePayloadRoot, 'default', 'SHA256SUMS'))) this.skip();
    parent = await mkdtemp(join(tmpdir(), 'pocketvm-init-full-'));
    small = join(parent, 'small');
    await mkdir(small);
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', small]);
  });
  after(async () => {
    if (small) await execa('umount', [small], { reject: false });
    if (parent) await rm(parent, { recursive: true, force: true });
  });

  const init = (root: string) => initStick({ root, sourcePayloadRoot, guests: ['default'], version: 'test' });

  it('a new folder: fails with "the stick is full" (exit 9) and the folder is gone', async () => {
    const root = join(small, 'stick');
    await assert.rejects(init(root), (error: unknown) => error instanceof StickError && error.exitCode === 9 && /full/.test(error.message));
    assert.deepEqual(await readdir(small), []);
  });

  it('an empty folder the person made: it stays, empty', async () => {
    const root = join(small, 'mine');
    await mkdir(root);
    await assert.rejects(init(root), /full/);
    assert.deepEqual(await readdir(root), []);
  });
});
