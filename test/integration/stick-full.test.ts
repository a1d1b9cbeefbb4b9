// The stick fills up while the guest writes (boots the real guest once). The
// stick is a small ext4 file system on a loop device (needs root); once the
// guest is up, a file on the host side leaves it 40 MiB, and the guest writes
// 200 MiB to its home. QEMU pauses the guest at the first write that does not
// fit; the person is told ("the stick is full: …" in `launcher status` and its
// --json); a suspend asked for meanwhile is refused (exit 9); freeing space
// (the file removed) lets the guest continue by itself.
// At the end the personal disk checks clean and the registry opens.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { login, personalDiskPath } from '../../src/auth/users.ts';
import { hostFingerprint } from '../../src/platform/host-fingerprint.ts';
import { linuxHost } from '../../src/hostprobe/linux.ts';
import { GuestRegistry } from '../../src/guestregistry/registry.ts';
import { registryPaths, stickLayout } from '../../src/stick/layout.ts';
import { checkDisk } from '../../src/vmm/disk-check.ts';
import { findQemuImg } from '../../src/vmm/qemu-binary.ts';
import { launcher, launcherJson, loginArgs } from './harness.ts';
import { canLoopMount, type LoopStick, makeLoopStick } from '../stick/loop-stick.ts';

const passphrase = 'full stick passphrase';

interface StatusJson {
  state: string;
  stickFull?: { since: string; message: string };
}

(canLoopMount ? describe : describe.skip)('a full stick while the guest writes (loop-mounted ext4; boots the real guest)', function () {
  this.timeout(1_200_000);
  let stick: string;
  const filler = () => join(loop!.mnt, 'filler');

  let loop: LoopStick | undefined;

  before(async () => {
    loop = await makeLoopStick({ sizeMiB: 320, prefix: 'pocketvm-stickfull-', user: 'tester', passphrase });
    stick = loop.stick;
  });
  after(async () => {
    await loop?.dispose();
  });

  it('pauses the guest, says "the stick is full", continues once space is freed; nothing damaged', async () => {
    const run = await launcher(['run', '--detach', '--stick', stick, ...loginArgs('tester')], { input: `${passphrase}\n`, timeout: 900_000 });
    assert.equal(run.exitCode, 0, run.stderr);
    // Leave the stick 40 MiB, then let the guest write 200 MiB to its home.
    const fs = statfsSync(stick);
    execFileSync('fallocate', ['-l', String(fs.bavail * fs.bsize - 40 * 1024 ** 2), filler()]);
    const writer = await launcher([
      'exec',
      '--stick',
      stick,
      '--',
      'sh',
      '-c',
      'dd if=/dev/zero of=big bs=1M count=200 conv=fsync >/dev/null 2>&1 </dev/null &',
    ]);
    assert.equal(writer.exitCode, 0, writer.stderr);

    let status: StatusJson | undefined;
    for (let i = 0; i < 300 && !status?.stickFull; i++) {
      status = (await launcherJson<StatusJson>(['status', '--stick', stick])).json;
      if (!status.stickFull) await new Promise((r) => setTimeout(r, 2_000));
    }
    assert.ok(status?.stickFull, 'the session never said the stick is full');
    assert.match(status!.stickFull!.message, /^the stick is full: the guest is paused so that nothing is lost/);
    const human = await launcher(['status', '--stick', stick]);
    assert.match(human.stdout, /the stick is full: the guest is paused/);
    // A suspend now is refused with one line (exit 9): the watch could
    // otherwise continue the guest under it once space came back.
    const suspend = await launcher(['eject', '--suspend', '--stick', stick]);
    assert.equal(suspend.exitCode, 9, suspend.stderr);
    assert.match(suspend.stderr, /the stick is full: the guest is paused until there is room, and cannot be suspended meanwhile/);

    // Space freed: the guest continues by itself and answers again.
    rmSync(filler());
    let after: StatusJson | undefined;
    for (let i = 0; i < 120; i++) {
      after = (await launcherJson<StatusJson>(['status', '--stick', stick])).json;
      if (!after.stickFull) break;
      await new Promise((r) => setTimeout(r, 2_000));
    }
    assert.equal(after?.stickFull, undefined);
    assert.equal(after?.state, 'ready');
    const wrote = await launcher(['exec', '--stick', stick, '--', 'sh', '-c', 'while pidof dd >/dev/null; do sleep 1; done; sync; stat -c %s big'], {
      timeout: 900_000,
    });
    assert.equal(wrote.exitCode, 0, wrote.stderr);
    assert.equal(wrote.stdout.trim(), String(200 * 1024 * 1024));

    const stopped = await launcher(['stop', '--stick', stick]);
    assert.equal(stopped.exitCode, 0, stopped.stderr);
    const layout = stickLayout(stick);
    const user = await login(layout, 'tester', passphrase);
    try {
      const checked = await checkDisk(findQemuImg(linuxHost, stick), personalDiskPath(layout, 'tester', 'default'), { key: user.diskKey });
      assert.equal(checked.status, 'clean', JSON.stringify(checked));
    } finally {
      user.diskKey.fill(0);
    }
    const registry = GuestRegistry.open({ file: registryPaths(layout, 'tester', 'default').file, hostId: await hostFingerprint(layout.hostSalt) });
    // Opens and reads (no damage repaired: a damaged file would have been set aside, exit 13).
    assert.ok(Array.isArray(registry.subkeys('')));
    registry.close();
  });
});
