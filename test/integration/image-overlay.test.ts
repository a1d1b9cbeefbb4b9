// Image guests (docs/images.md) on the real guest, with the small console-image
// guest (the default payload's own tree as an ext4 base, built in seconds): the
// system runs from a user's encrypted overlay over the read-only base, a file
// written to /etc survives a reboot and is nowhere on the stick in plaintext,
// another user's overlay does not see it, the base is byte-identical after
// the sessions; a newer base leaves an overlay on its own base until
// `launcher upgrade`, which keeps the home; a corrupt base and an overlay
// whose base is gone are refused with exit 18; a byte of the base changed on
// the stick (before the launch, or under a running session) never reaches the
// guest: the read of its block fails and the session ends with exit 18. Seven boots.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { blockHashesFileName, computeBlockHashes } from '../../src/payload/base-blocks.ts';
import { addStickUser, launcher, launcherJson, loginArgs } from './harness.ts';

const GUEST = 'console-image';
const MARKER = `pocketvm-overlay-marker-${Date.now()}`;
const passphrases = { alice: 'alice image passphrase', bob: 'bob image passphrase', carol: 'carol image passphrase' };

const sha256 = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

interface Manifest {
  image: { file: string; sha256: string; bytes: number; init: string; blocks: { file: string; sha256: string; blockBytes: number } };
}

describe('image guests: the system in each user’s encrypted overlay (boots the real guest)', function () {
  this.timeout(600_000);
  let parent: string;
  let stick: string;
  let guestDir: string;
  let manifest: Manifest;
  let base: string;
  let baseHash: string;
  const overlay = (user: string) => join(stick, 'users', user, 'disks', `${GUEST}.system.qcow2`);
  const run = (user: keyof typeof passphrases) =>
    launcherJson<{ user: string; error?: { code: number; kind: string; reason: string; message: string } }>(
      ['run', '--detach', '--accel', 'tcg', '--guest', GUEST, '--stick', stick, ...loginArgs(user)],
      { input: `${passphrases[user]}\n` },
    );
  const exec = (args: string[], root = false) => launcher(['exec', '--guest', GUEST, '--stick', stick, ...(root ? ['--root'] : []), '--', ...args]);
  const stop = async () => assert.equal((await launcher(['stop', '--guest', GUEST, '--stick', stick])).exitCode, 0);

  before(async () => {
    parent = await mkdtemp(join(tmpdir(), 'pocketvm-image-'));
    stick = join(parent, 'stick');
    // Builds the console-image guest first when this checkout has not (a few seconds).
    const made = await launcher(['init-stick', stick, '--guest', 'default', '--guest', GUEST]);
    assert.equal(made.exitCode, 0, made.stderr);
    await addStickUser(stick, 'alice', passphrases.alice);
    await addStickUser(stick, 'bob', passphrases.bob);
    await addStickUser(stick, 'carol', passphrases.carol);
    guestDir = join(stick, 'payload', GUEST);
    manifest = JSON.parse(await readFile(join(guestDir, 'guest.json'), 'utf8')) as Manifest;
    base = join(guestDir, manifest.image.file);
    baseHash = await sha256(base);
    assert.equal(baseHash, manifest.image.sha256);
  });
  after(async () => {
    await launcher(['stop', '--force', '--guest', GUEST, '--stick', stick]);
    await rm(parent, { recursive: true, force: true });
  });

  it('boots alice’s system from her overlay and keeps a file written to /etc across a reboot', async () => {
    const first = await run('alice');
    assert.equal(first.exitCode, 0, first.stderr);
    assert.ok(existsSync(overlay('alice')), 'the overlay is made on first launch');
    // The checked base's socket is in a private host folder the lock records (a killed launcher's is removed by the next launch).
    const { hostDirs } = JSON.parse(await readFile(join(stick, 'run', `${GUEST}.lock.json`), 'utf8')) as { hostDirs?: string[] };
    assert.equal(hostDirs?.length, 1);
    const hostDir = hostDirs[0]!;
    assert.ok(existsSync(join(hostDir, 'base.sock')));
    const mounted = await exec(['sh', '-c', 'grep " / " /proc/mounts']);
    assert.match(mounted.stdout, /^\/dev\/vd[a-z] \/ ext4 rw/m, 'the root is the system disk, not the initramfs');
    const written = await exec(['sh', '-c', `echo ${MARKER} > /etc/pocketvm-overlay-test && echo home > "/home/alice/kept" && sync`], true);
    assert.equal(written.exitCode, 0, written.stderr);
    await stop();
    const second = await run('alice');
    assert.equal(second.exitCode, 0, second.stderr);
    const read = await exec(['cat', '/etc/pocketvm-overlay-test']);
    assert.equal(read.stdout.trim(), MARKER);
    await stop();
    assert.equal(existsSync(hostDir), false, 'a clean stop removes its private host folder');
  });

  it('keeps the overlay encrypted: the marker is not in it in plaintext', async () => {
    const bytes = await readFile(overlay('alice'));
    assert.equal(bytes.indexOf(MARKER), -1);
    assert.ok(bytes.length > 0);
  });

  it('gives bob his own overlay, which does not see alice’s file', async () => {
    const started = await run('bob');
    assert.equal(started.exitCode, 0, started.stderr);
    const seen = await exec(['sh', '-c', 'test -e /etc/pocketvm-overlay-test && echo present || echo absent']);
    assert.equal(seen.stdout.trim(), 'absent');
    await stop();
  });

  it('leaves the base byte-identical after the sessions', async () => {
    assert.equal(await sha256(base), baseHash);
  });

  it('never gives the guest a byte of the base changed on the stick under a running session: the session ends and its log names the block', async () => {
    const started = await run('alice');
    assert.equal(started.exitCode, 0, started.stderr);
    // The base's second-to-last block: free space the file system never read, so the guest reads it only when asked to.
    const { blockBytes } = manifest.image.blocks;
    const block = Math.ceil(manifest.image.bytes / blockBytes) - 2;
    const saved = await readFile(base);
    const handle = await open(base, 'r+');
    await handle.write(Buffer.from('pocketvm tampered byte'), 0, 22, block * blockBytes + 100);
    await handle.close();
    try {
      // Straight from the system disk, past the guest's page cache: unwritten clusters of the overlay are the base's.
      const read = await exec(
        ['sh', '-c', `dd if=$(awk '$2=="/"{print $1}' /proc/mounts) bs=${blockBytes} skip=${block} count=1 iflag=direct 2>/dev/null | grep -c tampered`],
        true,
      );
      assert.doesNotMatch(read.stdout, /^1$/m, 'the changed bytes reached the guest');
      // The session ends (QEMU quit, teardown, the lock let go): polled, never timed.
      let status = await launcher(['status', '--guest', GUEST, '--stick', stick]);
      for (let tries = 0; status.exitCode === 0 && tries < 60; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        status = await launcher(['status', '--guest', GUEST, '--stick', stick]);
      }
      assert.notEqual(status.exitCode, 0, 'the session ended');
      const log = await readFile(join(stick, 'run', `${GUEST}.qemu.log`), 'utf8').catch(() => '');
      assert.match(log, new RegExp(`block ${block} .*is not the one its manifest names`), log.slice(-2000));
    } finally {
      await writeFile(base, saved);
      await launcher(['stop', '--force', '--guest', GUEST, '--stick', stick]);
    }
  });

  it('never gives the guest a changed byte of a block it reads at boot (the superblock): the launch fails with exit 18', async () => {
    const saved = await readFile(base);
    const handle = await open(base, 'r+');
    // The ext4 superblock's volume name (offset 1024 + 120).
    await handle.write(Buffer.from('tampered'), 0, 8, 1024 + 120);
    await handle.close();
    try {
      // carol has no overlay yet: her guest mounts the base's own superblock (alice's overlay holds a written copy of it).
      const refused = await run('carol');
      assert.equal(refused.exitCode, 18, refused.stderr);
      assert.equal(refused.json.error?.reason, 'corrupt');
      assert.match(refused.json.error?.message ?? '', /block 0 .*is not the one its manifest names/);
    } finally {
      await writeFile(base, saved);
      await launcher(['stop', '--force', '--guest', GUEST, '--stick', stick]);
    }
    assert.equal(await sha256(base), baseHash);
  });

  describe('a newer base on the stick', () => {
    let newer: string;
    before(async () => {
      // A newer base: the same file system with one byte changed in its last (free) block, named by its own hash.
      const scratch = join(parent, 'newer.ext4');
      await copyFile(base, scratch);
      const handle = await open(scratch, 'r+');
      await handle.write(Buffer.from('pocketvm newer base'), 0, 19, (await stat(scratch)).size - 4096);
      await handle.close();
      const hash = await sha256(scratch);
      newer = join(guestDir, `base-${hash}.ext4`);
      await rename(scratch, newer);
      const blocks = await computeBlockHashes(newer);
      await writeFile(join(guestDir, blockHashesFileName(hash)), blocks.list);
      const next = {
        ...manifest,
        image: {
          ...manifest.image,
          file: `base-${hash}.ext4`,
          sha256: hash,
          blocks: { ...manifest.image.blocks, file: blockHashesFileName(hash), sha256: blocks.sha256 },
        },
      };
      await writeFile(join(guestDir, 'guest.json'), `${JSON.stringify(next, null, 2)}\n`);
      const sums = (await readFile(join(guestDir, 'SHA256SUMS'), 'utf8')).replaceAll(manifest.image.sha256, hash);
      await writeFile(join(guestDir, 'SHA256SUMS'), sums);
    });

    it('keeps alice on the base her overlay was made over, and says a newer one waits', async () => {
      // Without --json: notices are narration, silent in JSON.
      const started = await launcher(['run', '--detach', '--accel', 'tcg', '--guest', GUEST, '--stick', stick, ...loginArgs('alice')], {
        input: `${passphrases.alice}\n`,
      });
      assert.equal(started.exitCode, 0, started.stderr);
      assert.match(started.stderr, /a newer console-image base is on the stick/);
      const read = await exec(['cat', '/etc/pocketvm-overlay-test']);
      assert.equal(read.stdout.trim(), MARKER);
      await stop();
      assert.equal(await sha256(base), baseHash);
    });

    it('refuses an overlay whose base is gone from the stick (exit 18), changing nothing', async () => {
      const aside = `${base}.aside`;
      await rename(base, aside);
      const before = await sha256(overlay('alice'));
      try {
        const refused = await run('alice');
        assert.equal(refused.exitCode, 18, refused.stderr);
        assert.equal(refused.json.error?.reason, 'other-base');
        assert.equal(await sha256(overlay('alice')), before);
      } finally {
        await rename(aside, base);
      }
    });

    it('upgrade moves alice onto the newer base: her /etc change goes, her home stays, bob keeps the old base', async () => {
      const refused = await launcher(['upgrade', '--guest', GUEST, '--user', 'alice', '--stick', stick]);
      assert.equal(refused.exitCode, 2, 'without --yes and no terminal it asks for confirmation');
      const upgraded = await launcherJson<{ upgraded: boolean; removedBases: string[] }>([
        'upgrade',
        '--guest',
        GUEST,
        '--user',
        'alice',
        '--yes',
        '--stick',
        stick,
      ]);
      assert.equal(upgraded.exitCode, 0, upgraded.stderr);
      assert.equal(upgraded.json.upgraded, true);
      assert.deepEqual(upgraded.json.removedBases, [], "bob's overlay still uses the older base");
      assert.ok(existsSync(base));
      const started = await launcher(['run', '--detach', '--accel', 'tcg', '--guest', GUEST, '--stick', stick, ...loginArgs('alice')], {
        input: `${passphrases.alice}\n`,
      });
      assert.equal(started.exitCode, 0, started.stderr);
      assert.doesNotMatch(started.stderr, /a newer console-image base/);
      const seen = await exec(['sh', '-c', 'test -e /etc/pocketvm-overlay-test && echo present || echo absent; cat /home/alice/kept']);
      assert.deepEqual(seen.stdout.trim().split('\n'), ['absent', 'home']);
      await stop();
    });

    it('refuses a base whose block list is not its manifest’s (exit 18) before QEMU starts', async () => {
      const list = join(guestDir, blockHashesFileName(basename(newer).slice(5, 69)));
      const saved = await readFile(list);
      const handle = await open(list, 'r+');
      await handle.write(Buffer.from('x'), 0, 1, 0);
      await handle.close();
      try {
        const refused = await run('alice');
        assert.equal(refused.exitCode, 18, refused.stderr);
        assert.equal(refused.json.error?.reason, 'corrupt');
        assert.match(refused.json.error?.message ?? '', /block list/);
      } finally {
        await writeFile(list, saved);
      }
    });
  });
});
