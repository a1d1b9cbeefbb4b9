// The base checked block by block (docs/images.md, "How the base is checked"):
// the block list against its root, and the launcher's NBD export read by
// QEMU's own NBD client (qemu-io; no guest): good blocks come through, a
// changed byte is an I/O error and is reported once, never the changed bytes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SystemImageError } from '../../src/errors.ts';
import { computeBlockHashes, loadBlockHashes } from '../../src/payload/base-blocks.ts';
import { serveVerifiedBase } from '../../src/session/verified-base.ts';

const BLOCK = 64 * 1024;
// Asynchronous: the export answers from this same process.
const qemuIo = async (socket: string, command: string): Promise<string> => {
  const args = ['-r', '--image-opts', `driver=raw,file.driver=nbd,file.server.type=unix,file.server.path=${socket}`, '-c', command];
  try {
    const { stdout, stderr } = await promisify(execFile)('qemu-io', args);
    return stdout + stderr;
  } catch (error) {
    const failed = error as { stdout: string; stderr: string };
    return `${failed.stdout}${failed.stderr} (failed)`;
  }
};

describe('the base checked block by block', function () {
  this.timeout(60_000);
  let dir: string;
  let base: string;
  const bytes = 5 * BLOCK + 4096;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pocketvm-blocks-'));
    base = join(dir, 'base.ext4');
    const data = Buffer.alloc(bytes);
    for (let i = 0; i < bytes; i++) data[i] = (i * 7) & 0xff;
    await writeFile(base, data);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('refuses a block list that is not the one its root names, or of the wrong length (exit 18)', async () => {
    const { list, sha256 } = await computeBlockHashes(base);
    assert.equal(list.length, 6 * 32);
    await writeFile(join(dir, 'list'), list);
    await loadBlockHashes(dir, { file: 'list', sha256, blockBytes: BLOCK }, bytes);
    await assert.rejects(loadBlockHashes(dir, { file: 'list', sha256: '0'.repeat(64), blockBytes: BLOCK }, bytes), (error: SystemImageError) => {
      assert.equal(error.details?.['reason'], 'corrupt');
      return error instanceof SystemImageError;
    });
    await assert.rejects(loadBlockHashes(dir, { file: 'list', sha256, blockBytes: BLOCK }, bytes + BLOCK), SystemImageError);
    await assert.rejects(loadBlockHashes(dir, { file: 'gone', sha256, blockBytes: BLOCK }, bytes), /missing/);
  });

  it('serves matching blocks to QEMU, and a changed byte as an I/O error that ends the serving', async () => {
    const { list, sha256 } = await computeBlockHashes(base);
    await writeFile(join(dir, 'list'), list);
    const blocks = await loadBlockHashes(dir, { file: 'list', sha256, blockBytes: BLOCK }, bytes);
    const reported: SystemImageError[] = [];
    const served = await serveVerifiedBase(base, blocks, (error) => reported.push(error));
    try {
      // Across a block boundary and up to the short last block.
      const good = await qemuIo(served.socket, `read ${BLOCK - 512} 1024`);
      assert.doesNotMatch(good, /error/i);
      const whole = await qemuIo(served.socket, `read 0 ${bytes}`);
      assert.match(whole, /read \d+\/\d+ bytes/);
      assert.doesNotMatch(whole, /error/i);
      const handle = await open(base, 'r+');
      await handle.write(Buffer.from([0xee]), 0, 1, 4 * BLOCK + 10);
      await handle.close();
    } finally {
      await served.close();
    }
    // A fresh export: the first one holds verified copies of every block in memory (what it checked is what it serves).
    const fresh = await serveVerifiedBase(base, blocks, (error) => reported.push(error));
    try {
      const bad = await qemuIo(fresh.socket, `read -v ${4 * BLOCK} 16`);
      assert.match(bad, /Input\/output error/);
      assert.doesNotMatch(bad, /\bee\b/, 'the changed byte was served');
      assert.equal(reported.length, 1);
      assert.match(reported[0]!.message, /block 4 \(at byte 262144\) is not the one its manifest names/);
      // Nothing more is served once a block failed, not even a good one.
      assert.match(await qemuIo(fresh.socket, 'read 0 512'), /Input\/output error/);
      assert.equal(reported.length, 1);
    } finally {
      await fresh.close();
    }
  });
});
