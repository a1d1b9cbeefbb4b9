// Test tier: integration (qemu-img and qemu-io make and read the disks)
// The system disk export writes (src/export/export-disk.ts) from a catalog
// image's store file, a qcow2 (a payload's base is raw): alone, and with a
// user's LUKS-encrypted overlay flattened over it and decrypted, the key given
// to qemu-img only through its stdin. Real qemu-img and qemu-io, a 1 MiB disk.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { writeDisk } from '../../src/export/export-disk.ts';

describe('writeDisk: a catalog image’s qcow2 store file as the base', function () {
  this.timeout(60_000);
  let dir: string;
  let base: string;
  const key = randomBytes(32);
  const secret = `secret,id=k,data=${key.toString('hex')}`;
  /** qemu-io's answers to `read -P` on a disk: whether every pattern matched. */
  const patterns = async (args: string[], reads: string[]) => {
    const result = await execa('qemu-io', [...args, ...reads.flatMap((read) => ['-c', read])], { reject: false, all: true });
    return result.exitCode === 0 && !/Pattern verification failed|error/i.test(String(result.all)) ? 'matched' : String(result.all);
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pocketvm-export-disk-'));
    base = join(dir, 'store.qcow2');
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', base, '1M']);
    await execa('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x11 0 64k', base]);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('writes the store file as is without a user', async () => {
    const out = join(dir, 'alone.qcow2');
    await writeDisk(dir, { base, baseFormat: 'qcow2' }, out, 'qcow2', () => {});
    assert.equal(await patterns(['-f', 'qcow2', out], ['read -P 0x11 0 64k', 'read -P 0 64k 64k']), 'matched');
  });

  it('flattens a user’s encrypted overlay over it into one plain disk: their writes over the image’s', async () => {
    const overlay = join(dir, 'overlay.qcow2');
    await execa('qemu-img', [
      'create',
      '-q',
      '--object',
      secret,
      '-f',
      'qcow2',
      '-o',
      // A short key derivation: the test is of the flattening, not of LUKS.
      'encrypt.format=luks,encrypt.key-secret=k,encrypt.iter-time=10',
      '-b',
      base,
      '-F',
      'qcow2',
      overlay,
    ]);
    await execa('qemu-io', ['--object', secret, '--image-opts', `driver=qcow2,file.filename=${overlay},encrypt.key-secret=k`, '-c', 'write -P 0x22 64k 64k']);
    const out = join(dir, 'flat.vmdk');
    await writeDisk(dir, { base, baseFormat: 'qcow2', overlay: { path: overlay, key } }, out, 'vmdk-stream', () => {});
    const info = JSON.parse(String((await execa('qemu-img', ['info', '--output=json', out])).stdout)) as { 'backing-filename'?: string; encrypted?: boolean };
    assert.equal(info['backing-filename'], undefined);
    assert.notEqual(info.encrypted, true);
    assert.equal(await patterns(['-f', 'vmdk', '-r', out], ['read -P 0x11 0 64k', 'read -P 0x22 64k 64k', 'read -P 0 128k 64k']), 'matched');
  });
});
