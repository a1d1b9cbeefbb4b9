// Recovery after a session that did not end cleanly, on a stick made by hand
// (no guest boots): a LUKS qcow2 with a leaked cluster (what a QEMU killed
// mid-write leaves) is checked through its key and the leak freed; a
// half-created disk and half-written lock updates are removed; the registry
// is checked; another user's disk is marked for their next login.
// Test tier: integration (runs qemu-img).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { execa } from 'execa';
import { linuxHost } from '../../src/hostprobe/linux.ts';
import { pendingRecovery, recoverAfterCrash } from '../../src/session/crash-recovery.ts';
import { registryPaths, stickLayout } from '../../src/stick/layout.ts';
import type { LockHolder } from '../../src/stick/lock.ts';
import { checkDisk } from '../../src/vmm/disk-check.ts';
import { findQemuImg } from '../../src/vmm/qemu-binary.ts';

/** Marks one cluster past the end of the image as in use: a leak, as a killed QEMU leaves them. */
export function leakOneCluster(path: string): void {
  const fd = openSync(path, 'r+');
  try {
    const header = Buffer.alloc(104);
    readSync(fd, header, 0, header.length, 0);
    const cluster = 2 ** header.readUInt32BE(20);
    const refcountTable = Number(header.readBigUInt64BE(48));
    if (header.readUInt32BE(4) >= 3 && header.readUInt32BE(96) !== 4) throw new Error('only 16-bit refcounts');
    const entry = Buffer.alloc(8);
    readSync(fd, entry, 0, 8, refcountTable);
    const block = Number(entry.readBigUInt64BE(0));
    const index = Math.ceil(fstatSync(fd).size / cluster);
    const one = Buffer.alloc(2);
    one.writeUInt16BE(1);
    writeSync(fd, one, 0, 2, block + index * 2);
    ftruncateSync(fd, (index + 1) * cluster);
  } finally {
    closeSync(fd);
  }
}

async function createEncryptedDisk(path: string, key: Buffer): Promise<void> {
  // QEMU 7.2's LUKS set-up sometimes cannot time its PBKDF (see src/vmm/encrypted-disk.ts): try again.
  for (let attempt = 0; ; attempt++) {
    const made = await execa(
      'qemu-img',
      [
        'create',
        '-q',
        '-f',
        'qcow2',
        '--object',
        `secret,id=k,data=${key.toString('hex')}`,
        '-o',
        'encrypt.format=luks,encrypt.key-secret=k,encrypt.iter-time=10',
        path,
        '64M',
      ],
      { reject: false },
    );
    if (made.exitCode === 0) return;
    if (attempt >= 5 || !/accurate CPU usage/.test(String(made.stderr))) throw new Error(String(made.stderr));
  }
}

describe('recovery after a session that did not end cleanly', function () {
  this.timeout(60_000);
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'pocketvm-recovery-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('frees leaked clusters through the key, removes leftovers, checks the registry, defers another user', async () => {
    const layout = stickLayout(root);
    const key = randomBytes(32);
    const disks = join(layout.usersRoot, 'alice', 'disks');
    await mkdir(disks, { recursive: true });
    await mkdir(join(layout.usersRoot, 'bob'), { recursive: true });
    await mkdir(layout.runDir, { recursive: true });
    const disk = join(disks, 'default.qcow2');
    await createEncryptedDisk(disk, key);
    leakOneCluster(disk);
    await writeFile(join(disks, 'other.qcow2.partial'), 'half');
    await writeFile(join(layout.runDir, 'lock.json.0a1b2c3d.tmp'), '{"pid":');
    const db = new DatabaseSync(registryPaths(layout, 'alice', 'default').file);
    db.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1);');
    db.close();

    const qemuImg = findQemuImg(linuxHost, root);
    assert.equal((await checkDisk(qemuImg, disk, { key })).leaks, 1);
    const previous: LockHolder = { pid: 4_194_305, hostname: 'pc-a', command: 'run --detach', startedAt: '2026-01-01T00:00:00.000Z', user: 'bob' };
    const steps: string[] = [];
    const report = await recoverAfterCrash({
      layout,
      previous,
      user: { name: 'alice', diskKey: key },
      guest: 'default',
      host: linuxHost,
      onStep: (m) => steps.push(m),
    });

    assert.equal(report.ok, true, report.summary);
    assert.equal(report.disks.length, 1);
    assert.equal(report.disks[0]!.status, 'clean');
    assert.equal(report.disks[0]!.action, 'freed-leaks');
    assert.equal(report.disks[0]!.leaksFixed, 1);
    assert.equal(report.registry?.status, 'clean');
    assert.deepEqual(report.removed.sort(), [join(disks, 'other.qcow2.partial'), join(layout.runDir, 'lock.json.0a1b2c3d.tmp')].sort());
    assert.deepEqual(report.deferred, ["bob's disk is checked when bob logs in next"]);
    assert.match(
      report.summary,
      /^the last session \(launcher run --detach \(pid 4194305 on pc-a, since 2026-01-01T00:00:00\.000Z\)\) did not end cleanly; recovery: default\.qcow2 clean after freeing 1 leaked cluster; registry clean; removed 2 leftover files; bob's disk is checked when bob logs in next$/,
    );
    assert.ok(steps.some((m) => /1 leaked cluster/.test(m)));
    assert.equal((await checkDisk(qemuImg, disk, { key })).status, 'clean');
    // Bob's files wait for his key; Alice's marker (if any) is gone.
    assert.equal((await pendingRecovery(layout, 'bob'))?.pid, 4_194_305);
    assert.equal(await pendingRecovery(layout, 'alice'), undefined);
  });

  it('reports a disk it cannot open with the key, and never touches it', async () => {
    const layout = stickLayout(root);
    const disks = join(layout.usersRoot, 'alice', 'disks');
    await mkdir(disks, { recursive: true });
    const disk = join(disks, 'default.qcow2');
    await createEncryptedDisk(disk, randomBytes(32));
    const previous: LockHolder = { pid: -1, hostname: '?', command: '?', startedAt: '?' };
    const report = await recoverAfterCrash({ layout, previous, user: { name: 'alice', diskKey: randomBytes(32) }, guest: 'default', host: linuxHost });
    assert.equal(report.ok, false);
    assert.equal(report.disks[0]!.status, 'failed');
    assert.equal(report.disks[0]!.action, 'left-alone');
    assert.match(report.summary, /^the last session \(launcher \?\) did not end cleanly; recovery: default\.qcow2 could not be checked \(.*Invalid password/);
    assert.ok(existsSync(disk));
  });
});
