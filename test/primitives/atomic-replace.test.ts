// The one write-then-rename: the target holds the old content or the new,
// the temporary file is gone either way, and cleanups recognise what a dead
// writer left.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { copyFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  isTempOf,
  replaceFile,
  replaceFileSync,
  replaceFileWith,
  replaceFileWithSync,
  syncDirectory,
  syncDirectorySync,
  tempPathFor,
  tempWriterPid,
} from '../../src/primitives/atomic-replace.ts';

describe('atomic replace', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pocketvm-replace-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('replaces a file and leaves nothing else in its folder', async () => {
    const target = join(dir, 'state.json');
    writeFileSync(target, 'old');
    await replaceFile(target, 'new', { mode: 0o600 });
    assert.equal(readFileSync(target, 'utf8'), 'new');
    assert.equal(statSync(target).mode & 0o777, 0o600);
    replaceFileSync(target, 'newer');
    assert.equal(readFileSync(target, 'utf8'), 'newer');
    assert.deepEqual(readdirSync(dir), ['state.json']);
  });

  it('keeps the old content and removes the temporary file when the new content fails', async () => {
    const target = join(dir, 'copy.bin');
    writeFileSync(target, 'old');
    await assert.rejects(
      replaceFileWith(target, async (temp) => {
        await writeFile(temp, 'half');
        throw new Error('the source went away');
      }),
      /the source went away/,
    );
    assert.throws(
      () =>
        replaceFileWithSync(target, (temp) => {
          writeFileSync(temp, 'half');
          throw new Error('check failed');
        }),
      /check failed/,
    );
    await assert.rejects(
      replaceFileWith(target, (temp) => copyFile(join(dir, 'missing'), temp)),
      { code: 'ENOENT' },
    );
    assert.equal(readFileSync(target, 'utf8'), 'old');
    assert.deepEqual(readdirSync(dir), ['copy.bin']);
  });

  it('names temporary files after their target and writer, in the target folder', () => {
    const temp = tempPathFor(join(dir, 'lock.json'));
    const name = temp.slice(dir.length + 1);
    assert.ok(temp.startsWith(join(dir, 'lock.json.')));
    assert.equal(tempPathFor(join(dir, 'lock.json')) === temp, false, 'two writers never share a name');
    assert.equal(isTempOf(name, 'lock.json'), true);
    assert.equal(tempWriterPid(name, 'lock.json'), process.pid);
    // A lock update from before this module: recognised, without a writer.
    assert.equal(isTempOf('lock.json.0a1b2c3d.tmp', 'lock.json'), true);
    assert.equal(tempWriterPid('lock.json.0a1b2c3d.tmp', 'lock.json'), undefined);
    for (const other of ['lock.json', 'lock.json.tmp', 'lockxjson.0a1b.tmp', 'other.json.12-0a1b.tmp', 'lock.json.12-0a1b.tmp.x'])
      assert.equal(isTempOf(other, 'lock.json'), false, other);
  });

  it('syncs a folder, and a missing one is nothing to sync', async () => {
    await syncDirectory(dir);
    syncDirectorySync(dir);
    await syncDirectory(join(dir, 'gone'));
    syncDirectorySync(join(dir, 'gone'));
  });
});
