import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { gunzipSync, gzipSync } from 'node:zlib';
import { withParentDirectories, writeCpio, type CpioEntry } from '../../build/payload/cpio.ts';

interface Member {
  name: string;
  mode: number;
  nlink: number;
  mtime: number;
  size: number;
  rdevMajor: number;
  rdevMinor: number;
  data: Buffer;
}

/** An independent newc reader: checks the magic, the padding and the trailer on the way. */
function parseNewc(archive: Buffer): Member[] {
  const members: Member[] = [];
  let at = 0;
  const field = (i: number) => parseInt(archive.toString('ascii', at + 6 + i * 8, at + 14 + i * 8), 16);
  for (;;) {
    assert.equal(at % 4, 0, 'headers start on a 4-byte boundary');
    assert.equal(archive.toString('ascii', at, at + 6), '070701', `newc magic at ${at}`);
    const nameSize = field(11);
    const size = field(6);
    const name = archive.toString('utf8', at + 110, at + 110 + nameSize - 1);
    assert.equal(archive[at + 110 + nameSize - 1], 0, 'name is NUL-terminated');
    const dataAt = Math.ceil((at + 110 + nameSize) / 4) * 4;
    const member = {
      name,
      mode: field(1),
      nlink: field(4),
      mtime: field(5),
      size,
      rdevMajor: field(9),
      rdevMinor: field(10),
      data: archive.subarray(dataAt, dataAt + size),
    };
    at = Math.ceil((dataAt + size) / 4) * 4;
    if (name === 'TRAILER!!!') break;
    members.push(member);
  }
  assert.ok(archive.length - at < 4, 'nothing after the trailer but padding');
  return members;
}

const entries: CpioEntry[] = [
  { type: 'directory', path: 'bin', mode: 0o755 },
  { type: 'file', path: '/bin/hello', mode: 0o755, data: Buffer.from('#!/bin/sh\necho hi\n') },
  { type: 'file', path: 'etc/odd', mode: 0o644, data: Buffer.from('12345') },
  { type: 'symlink', path: 'bin/sh', target: '/bin/busybox' },
  { type: 'char-device', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
  { type: 'directory', path: 'tmp', mode: 0o1777 },
];

describe('cpio newc writer', () => {
  it('writes members a newc reader gets back exactly (types, modes, data, device numbers)', () => {
    const members = parseNewc(Buffer.concat(writeCpio(entries, { mtime: 1234 })));
    assert.deepEqual(
      members.map((m) => m.name),
      ['bin', 'bin/hello', 'etc/odd', 'bin/sh', 'dev/console', 'tmp'],
    );
    const byName = new Map(members.map((m) => [m.name, m]));
    assert.equal(byName.get('bin')?.mode, 0o040755);
    assert.equal(byName.get('bin/hello')?.mode, 0o100755);
    assert.equal(byName.get('bin/hello')?.data.toString(), '#!/bin/sh\necho hi\n');
    assert.equal(byName.get('etc/odd')?.size, 5);
    assert.equal(byName.get('etc/odd')?.data.toString(), '12345');
    assert.equal(byName.get('bin/sh')?.mode, 0o120777);
    assert.equal(byName.get('bin/sh')?.data.toString(), '/bin/busybox');
    assert.equal(byName.get('dev/console')?.mode, 0o020600);
    assert.deepEqual([byName.get('dev/console')?.rdevMajor, byName.get('dev/console')?.rdevMinor], [5, 1]);
    assert.equal(byName.get('tmp')?.mode, 0o041777);
    assert.ok(members.every((m) => m.mtime === 1234));
  });

  it('is listed identically by the system cpio', function () {
    const probe = spawnSync('cpio', ['--version']);
    assert.ok(!probe.error, 'GNU cpio is needed to check against; .ci/run installs it');
    const listing = spawnSync('cpio', ['-t', '--quiet'], { input: Buffer.concat(writeCpio(entries)) });
    assert.equal(listing.status, 0, String(listing.stderr));
    assert.deepEqual(String(listing.stdout).trim().split('\n'), ['bin', 'bin/hello', 'etc/odd', 'bin/sh', 'dev/console', 'tmp']);
  });

  it('is deterministic and survives a gzip round trip', () => {
    const a = gzipSync(Buffer.concat(writeCpio(entries)));
    const b = gzipSync(Buffer.concat(writeCpio(entries)));
    assert.deepEqual(a, b);
    assert.equal(parseNewc(gunzipSync(a)).length, entries.length);
  });

  it('adds missing parent directories before their contents, sorted', () => {
    const sorted = withParentDirectories([
      { type: 'file', path: 'usr/bin/pocketvm-facts', mode: 0o755, data: Buffer.alloc(0) },
      { type: 'symlink', path: 'bin/sh', target: 'busybox' },
      { type: 'file', path: 'bin-extra', mode: 0o644, data: Buffer.alloc(0) },
    ]);
    assert.deepEqual(
      sorted.map((e) => `${e.type}:${e.path}`),
      ['directory:bin', 'symlink:bin/sh', 'file:bin-extra', 'directory:usr', 'directory:usr/bin', 'file:usr/bin/pocketvm-facts'],
    );
  });

  it('rejects duplicate paths, paths through a file, and paths escaping the root', () => {
    const file = { type: 'file', path: 'a', mode: 0o644, data: Buffer.alloc(0) } as const;
    assert.throws(() => withParentDirectories([file, { ...file, path: '/a' }]), /duplicate archive path: a/);
    assert.throws(() => withParentDirectories([file, { ...file, path: 'a/b' }]), /a is not a directory/);
    assert.throws(() => writeCpio([{ ...file, path: '../etc/passwd' }]), /invalid archive path/);
    assert.throws(() => writeCpio([{ ...file, path: '/' }]), /invalid archive path/);
  });
});
