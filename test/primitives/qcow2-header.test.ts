// The backing-file name a qcow2 header records, read without QEMU, checked
// against images qemu-img makes.
// Test tier: integration (qemu-img makes the qcow2 files)
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { NotQcow2Error, qcow2BackingFile } from '../../src/primitives/qcow2-header.ts';

describe('qcow2 backing file name', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pocketvm-qcow2-'));
    await writeFile(join(dir, 'base-1.ext4'), Buffer.alloc(1024 * 1024));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('reads the name an overlay was made with, and none for an image without a backing file', async () => {
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', '../x/base-1.ext4', '-F', 'raw', '-u', join(dir, 'over.qcow2'), '1M']);
    assert.equal(await qcow2BackingFile(join(dir, 'over.qcow2')), '../x/base-1.ext4');
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'plain.qcow2'), '1M']);
    assert.equal(await qcow2BackingFile(join(dir, 'plain.qcow2')), undefined);
  });

  it('refuses a file that is not qcow2', async () => {
    await assert.rejects(qcow2BackingFile(join(dir, 'base-1.ext4')), NotQcow2Error);
    await writeFile(join(dir, 'short'), 'QFI');
    await assert.rejects(qcow2BackingFile(join(dir, 'short')), NotQcow2Error);
  });
});
