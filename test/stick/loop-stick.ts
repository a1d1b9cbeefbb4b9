// A small ext4 file system on a loop device, made for a test and holding a
// new stick: how the full-stick tests get a stick whose free space they
// control (needs root, losetup and mkfs.ext4; tests skip without them).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addStickUser, launcher } from '../integration/harness.ts';

export const canLoopMount = process.getuid?.() === 0 && spawnSync('losetup', ['--version']).status === 0 && spawnSync('mkfs.ext4', ['-V']).status === 0;

export interface LoopStick {
  /** The temporary folder holding the image and its mount point. */
  base: string;
  /** Where the file system is mounted. */
  mnt: string;
  /** The stick, made by init-stick on that file system, with one user. */
  stick: string;
  /** Stops any session on the stick, unmounts, removes everything. */
  dispose(): Promise<void>;
}

export async function makeLoopStick(options: { sizeMiB: number; prefix: string; user: string; passphrase: string }): Promise<LoopStick> {
  const base = mkdtempSync(join(tmpdir(), options.prefix));
  const mnt = join(base, 'mnt');
  execFileSync('truncate', ['-s', `${options.sizeMiB}M`, join(base, 'stick.img')]);
  execFileSync('mkfs.ext4', ['-q', join(base, 'stick.img')]);
  mkdirSync(mnt);
  execFileSync('mount', ['-o', 'loop', join(base, 'stick.img'), mnt]);
  const stick = join(mnt, 'stick');
  const made = await launcher(['init-stick', stick]);
  assert.equal(made.exitCode, 0, made.stderr);
  await addStickUser(stick, options.user, options.passphrase);
  return {
    base,
    mnt,
    stick,
    dispose: async () => {
      await launcher(['stop', '--force', '--stick', stick]);
      spawnSync('umount', ['-l', mnt]);
      rmSync(base, { recursive: true, force: true });
    },
  };
}
