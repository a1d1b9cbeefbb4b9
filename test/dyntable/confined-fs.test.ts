// lstatNames: the per-entry stats of a directory listing, taken with the
// working directory in the listed directory for a chunk at a time.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { lstatNames } from '../../src/dyntable/confined-fs.ts';

describe('lstatNames', function () {
  let dir: string;
  const names: string[] = [];
  const startCwd = process.cwd();

  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketvm-lstatnames-'));
    // More than one chunk (256), a symlink (lstat, not followed) and a subdirectory.
    for (let i = 0; i < 600; i++) fs.writeFileSync(path.join(dir, `f${i}`), 'x'.repeat(i));
    fs.symlinkSync('/etc/passwd', path.join(dir, 'link'));
    fs.mkdirSync(path.join(dir, 'sub'));
    names.push(...fs.readdirSync(dir), 'vanished');
  });

  after(function () {
    process.chdir(startCwd);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const expectSame = (stats: Array<fs.BigIntStats | undefined>, base: string) => {
    assert.equal(stats.length, names.length);
    names.forEach((name, i) => {
      const want = fs.lstatSync(path.join(base, name), { bigint: true, throwIfNoEntry: false });
      if (want === undefined) return assert.equal(stats[i], undefined, name);
      assert.equal(stats[i]?.ino, want.ino, name);
      assert.equal(stats[i]?.mode, want.mode, name);
      assert.equal(stats[i]?.size, want.size, name);
    });
  };

  it('stats every name like lstat by full path, across chunks, and leaves the working directory as it was', async function () {
    const stats = await lstatNames(dir, names);
    expectSame(stats, dir);
    assert.equal(stats[names.indexOf('vanished')], undefined);
    assert.ok(stats[names.indexOf('link')]!.isSymbolicLink(), 'the symlink itself, not /etc/passwd');
    assert.equal(process.cwd(), startCwd);
  });

  it('works through an open descriptor (/proc/self/fd/N), as the server lists', async function () {
    if (process.platform !== 'linux') this.skip();
    const fd = fs.openSync(dir, 'r');
    try {
      expectSame(await lstatNames(`/proc/self/fd/${fd}`, names), dir);
      assert.equal(process.cwd(), startCwd);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('relative paths used elsewhere between chunks still resolve against the real working directory', async function () {
    const marker = `pocketvm-lstatnames-marker-${process.pid}`;
    fs.writeFileSync(path.join(startCwd, marker), '');
    try {
      let seen = 0;
      // Each chunk yields to the event loop: a timer firing between chunks sees the process's own directory.
      const probe = setInterval(() => {
        if (fs.existsSync(marker)) seen++;
        else assert.fail('a relative path resolved somewhere else during a listing');
      }, 0);
      const many = Array.from({ length: 20 }, () => names).flat();
      await lstatNames(dir, many);
      clearInterval(probe);
      assert.ok(seen > 0, 'the probe ran between chunks');
      assert.equal(process.cwd(), startCwd);
    } finally {
      fs.rmSync(path.join(startCwd, marker), { force: true });
    }
  });

  it('falls back to full paths when the working directory was deleted, and leaves it alone', async function () {
    if (process.platform === 'win32') this.skip();
    const gone = fs.mkdtempSync(path.join(os.tmpdir(), 'pocketvm-lstatnames-cwd-'));
    process.chdir(gone);
    fs.rmdirSync(gone);
    try {
      expectSame(await lstatNames(dir, names), dir);
      assert.throws(() => process.cwd(), /ENOENT/, 'still in the deleted directory');
    } finally {
      process.chdir(startCwd);
    }
  });
});
