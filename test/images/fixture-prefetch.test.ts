// The claim protocol between npm test's background fixture builder and the
// tests that use its fixtures (fixture-prefetch.ts): a test waits while the
// builder holds the claim and not a moment after; a claim naming no process,
// another program (a pid reused since) or the caller itself holds nothing;
// the files that use a prefetched fixture run last, the others in their order.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testFiles } from '../../build/test-tiers.ts';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { FIXTURE_PREFETCH_CHILD, orderForPrefetch, waitForPrefetch } from './fixture-prefetch.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** /proc/PID/cmdline, empty once the process has exited (a zombie's is empty too). */
const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
};

describe('fixture prefetch: claims and order', () => {
  let claims: string;
  beforeEach(() => {
    claims = tempDir('pvm-prefetch-');
  });
  afterEach(() => removeDir(claims));

  it('waits while the builder holds the claim, until it is gone', () => {
    // A stand-in builder: its command line names the builder's script, as the real one's does.
    const builder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 1500)', FIXTURE_PREFETCH_CHILD], { stdio: 'ignore' });
    writeFileSync(join(claims, 'adapt-image.pid'), String(builder.pid));
    assert.ok(cmdline(builder.pid!).includes(FIXTURE_PREFETCH_CHILD), 'the stand-in is running when the wait starts');
    const said: string[] = [];
    waitForPrefetch('adapt-image', (message) => said.push(message), claims);
    assert.equal(cmdline(builder.pid!), '', 'the wait ended only once the builder had exited');
    assert.equal(said.length, 2, said.join('\n'));
    assert.match(said[0]!, /waiting for the adapt-image that npm test builds in the background/);
  });

  it('holds nothing without a claim, for a process that is not the builder, or for the caller itself', () => {
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const said: string[] = [];
      waitForPrefetch('images-corpus', (message) => said.push(message), claims);
      writeFileSync(join(claims, 'images-corpus.pid'), String(other.pid));
      waitForPrefetch('images-corpus', (message) => said.push(message), claims);
      writeFileSync(join(claims, 'images-corpus.pid'), String(process.pid));
      waitForPrefetch('images-corpus', (message) => said.push(message), claims);
      assert.deepEqual(said, []);
      assert.ok(cmdline(other.pid!).startsWith('sleep'), 'the other process was alive throughout');
    } finally {
      other.kill();
    }
  });

  it('runs the integration files that use a prefetched fixture last, each group in its order', () => {
    const files = testFiles(root, 'integration');
    const ordered = orderForPrefetch(files);
    assert.deepEqual([...ordered].sort(), [...files].sort());
    const users = [
      'test/integration/console-page.test.ts',
      'test/integration/desktop-guest.test.ts',
      'test/integration/image-adapt.test.ts',
      'test/integration/image-capture.test.ts',
      'test/integration/image-customize-deploy.test.ts',
      'test/integration/images.test.ts',
      'test/integration/import.test.ts',
    ];
    assert.deepEqual(ordered.slice(-users.length), users);
    const others = ordered.slice(0, -users.length);
    assert.deepEqual(
      others,
      files.filter((file) => !users.includes(file)),
    );
    assert.ok(others.includes('test/integration/files.test.ts'), 'files uses its own corpus (test/files/corpus.ts), not the images one');
  });
});
