// The base image itself: an ext4 file system made from the tree by
// `mke2fs -d` (no mount, no loop device), sized to the tree plus the recipe's
// free space, with a UUID and hash seed derived from the inputs so the same
// recipe gives the same file-system identity.
import { spawnSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { PayloadBuildError } from '../payload/errors.ts';
import { runTool } from './tool.ts';

const MiB = 1024 * 1024;

/** Bytes and files the tree holds (du's disk usage, so small files count as whole blocks). */
export function treeUsage(tree: string): { bytes: number; files: number } {
  const du = spawnSync('du', ['-s', '-B1', '-x', tree], { encoding: 'utf8' });
  const find = spawnSync('sh', ['-c', 'find "$1" -xdev | wc -l', 'sh', tree], { encoding: 'utf8' });
  if (du.status !== 0 || find.status !== 0) throw new PayloadBuildError(`cannot measure the image tree ${tree}: ${du.stderr || find.stderr}`);
  return { bytes: Number(du.stdout.split(/\s/)[0]), files: Number(find.stdout.trim()) };
}

/** The file system's size in MiB: the tree, ext4's own overhead (inode tables, journal), and the free space asked for. */
export function imageSizeMiB(usage: { bytes: number; files: number }, freeMiB: number): number {
  const treeMiB = Math.ceil(usage.bytes / MiB);
  // 256-byte inodes for 1.5x the files; 10% for metadata and fragmentation; 32 MiB for the journal's floor.
  const inodeMiB = Math.ceil((usage.files * 1.5 * 256) / MiB);
  return treeMiB + Math.ceil(treeMiB * 0.1) + inodeMiB + 32 + freeMiB;
}

/** An RFC 4122-shaped UUID from the first bytes of a hex digest. */
export function uuidFrom(hex: string): string {
  const h = `${hex.slice(0, 12)}4${hex.slice(13, 16)}8${hex.slice(17, 32)}`;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export async function makeExt4(args: { tree: string; output: string; sizeMiB: number; files: number; label: string; inputs: string }): Promise<void> {
  await rm(args.output, { force: true });
  const uuid = uuidFrom(args.inputs);
  await runTool(
    'mke2fs',
    [
      '-q',
      '-F',
      '-t',
      'ext4',
      '-L',
      args.label,
      '-U',
      uuid,
      '-E',
      `hash_seed=${uuid},root_owner=0:0`,
      '-N',
      String(Math.ceil(args.files * 1.5) + 4096),
      '-I',
      '256',
      '-m',
      '0',
      '-d',
      args.tree,
      args.output,
      `${args.sizeMiB}M`,
    ],
    // Every timestamp mke2fs writes itself (superblock, root, lost+found) from the inputs, not the clock.
    { env: { E2FSPROGS_FAKE_TIME: '1700000000' } },
  );
}
