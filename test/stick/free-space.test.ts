// A launch on a nearly full stick is refused before anything starts: one line
// ("the stick is full: …"), exit 9, nothing of the user's on the stick changed. The stick is
// a small ext4 file system on a loop device (needs root), filled with a file.
// Test tier: integration (runs the launcher as a process).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { statfsSync } from 'node:fs';
import { join } from 'node:path';
import { LAUNCH_MIN_FREE_BYTES } from '../../src/stick/free-space.ts';
import { canLoopMount, type LoopStick, makeLoopStick } from './loop-stick.ts';
import { launcher, loginArgs, qemuPidsFor } from '../integration/harness.ts';

(canLoopMount ? describe : describe.skip)('free space before a launch (loop-mounted ext4 stick)', function () {
  this.timeout(300_000);
  let stick: string;

  let loop: LoopStick | undefined;

  before(async () => {
    loop = await makeLoopStick({ sizeMiB: 128, prefix: 'pocketvm-full-', user: 'tester', passphrase: 'tester passphrase' });
    stick = loop.stick;
  });
  after(async () => {
    await loop?.dispose();
  });

  it('refuses to launch with one line and exit 9 when less than the minimum is free; nothing started', async () => {
    const fs = statfsSync(stick);
    const fill = fs.bavail * fs.bsize - 8 * 1024 ** 2;
    execFileSync('fallocate', ['-l', String(fill), join(loop!.mnt, 'filler')]);
    // users/ (the personal disk, the registry) as it was; run/ holds the session log that records the refusal.
    const before = execFileSync('ls', ['-laR', join(stick, 'users')], { encoding: 'utf8' });
    const result = await launcher(['run', '--detach', '--stick', stick, ...loginArgs('tester')], { input: 'tester passphrase\n' });
    assert.equal(result.exitCode, 9, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `^pocketvm: error: the stick is full: [78] MiB free, and a launch needs at least ${LAUNCH_MIN_FREE_BYTES / 1024 ** 2} MiB \\(free some space`,
        'm',
      ),
    );
    assert.deepEqual(await qemuPidsFor(stick), []);
    assert.equal(execFileSync('ls', ['-laR', join(stick, 'users')], { encoding: 'utf8' }), before);
  });
});
