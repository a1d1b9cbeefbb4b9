// A launch on a nearly full stick is refused before anything starts: one line
// ("the stick is full: …"), exit 9, nothing of the user's on the stick changed. The stick is
// a small ext4 file system on a loop device (needs root), filled with a file.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAUNCH_MIN_FREE_BYTES } from '../../src/stick/free-space.ts';
import { addStickUser, launcher, loginArgs, qemuPidsFor } from '../integration/harness.ts';

const canLoopMount = process.getuid?.() === 0 && spawnSync('losetup', ['--version']).status === 0 && spawnSync('mkfs.ext4', ['-V']).status === 0;

(canLoopMount ? describe : describe.skip)('free space before a launch (loop-mounted ext4 stick)', function () {
  this.timeout(300_000);
  let base: string;
  let stick: string;

  before(async () => {
    base = mkdtempSync(join(tmpdir(), 'pocketvm-full-'));
    execFileSync('truncate', ['-s', '128M', join(base, 'stick.img')]);
    execFileSync('mkfs.ext4', ['-q', join(base, 'stick.img')]);
    mkdirSync(join(base, 'mnt'));
    execFileSync('mount', ['-o', 'loop', join(base, 'stick.img'), join(base, 'mnt')]);
    stick = join(base, 'mnt', 'stick');
    const made = await launcher(['init-stick', stick]);
    assert.equal(made.exitCode, 0, made.stderr);
    await addStickUser(stick, 'tester', 'tester passphrase');
  });
  after(async () => {
    await launcher(['stop', '--force', '--stick', stick]);
    spawnSync('umount', ['-l', join(base, 'mnt')]);
    rmSync(base, { recursive: true, force: true });
  });

  it('refuses to launch with one line and exit 9 when less than the minimum is free; nothing started', async () => {
    const fs = statfsSync(stick);
    const fill = fs.bavail * fs.bsize - 8 * 1024 ** 2;
    execFileSync('fallocate', ['-l', String(fill), join(base, 'mnt', 'filler')]);
    // users/ (the personal disk, the registry) as it was; run/ holds the session log that records the refusal.
    const before = execFileSync('ls', ['-laR', join(stick, 'users')], { encoding: 'utf8' });
    const result = await launcher(['run', '--detach', '--stick', stick, ...loginArgs('tester')], { input: 'tester passphrase\n' });
    assert.equal(result.exitCode, 9, result.stderr);
    assert.match(result.stderr, new RegExp(`^pocketvm: error: the stick is full: [78] MiB free, and a launch needs at least ${LAUNCH_MIN_FREE_BYTES / 1024 ** 2} MiB \\(free some space`, 'm'));
    assert.deepEqual(await qemuPidsFor(stick), []);
    assert.equal(execFileSync('ls', ['-laR', join(stick, 'users')], { encoding: 'utf8' }), before);
  });
});
