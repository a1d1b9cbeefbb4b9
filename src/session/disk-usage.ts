// What a user's guests hold on the stick, for the disk quota
// (docs/guests.md, "Per-user quotas"). Everything under users/<user>/
// counts: personal disks and image guests' system overlays, saved states,
// registries, /host files (files/, upper/), their anchors. A file counts at
// the space it takes on the stick (its allocated blocks), except a qcow2
// disk, which counts at least at its virtual size: the guest may fill it
// from inside without the launcher seeing each write, so the quota holds the
// room it can grow to from the start. The launch is refused when what is
// there plus what it would add (a personal disk or overlay not made yet)
// passes the quota; /host writes are refused (ENOSPC in the guest) once the
// quota is reached; a suspend whose saved state would pass it is refused,
// the guest running on.
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DiskQuotaError } from '../errors.ts';
import { qcow2VirtualBytes } from '../primitives/qcow2-header.ts';
import type { StickLayout } from '../stick/layout.ts';

const MiB = 1024 * 1024;

async function fileBytes(path: string, allocated: number): Promise<number> {
  if (!path.endsWith('.qcow2')) return allocated;
  const virtual = await qcow2VirtualBytes(path).catch(() => undefined);
  return Math.max(allocated, virtual ?? 0);
}

/** Bytes under `dir` as the quota counts them; paths in `skip` (and below them) are left out. */
async function treeBytes(dir: string, skip: ReadonlySet<string>): Promise<number> {
  if (skip.has(dir)) return 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
  let total = 0;
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (skip.has(path)) continue;
    if (entry.isDirectory()) total += await treeBytes(path, skip);
    else {
      // A file removed while counted (a session's temporary file) counts as nothing.
      const info = await lstat(path).catch(() => undefined);
      if (info) total += await fileBytes(path, info.blocks * 512);
    }
  }
  return total;
}

/** What `user`'s guests hold on the stick, in bytes; `skip` leaves folders out (the ones a quota counts itself). */
export async function userDiskBytes(layout: StickLayout, user: string, skip: readonly string[] = []): Promise<number> {
  return treeBytes(join(layout.usersRoot, user), new Set(skip));
}

/** Bytes under one folder as the quota counts them. */
export async function folderBytes(dir: string): Promise<number> {
  return treeBytes(dir, new Set());
}

export interface DiskAddition {
  what: string;
  bytes: number;
}

const mib = (bytes: number) => Math.ceil(bytes / MiB);

/**
 * Refuses (exit 36) when what `user` holds plus `adding` passes `quotaMiB`;
 * returns the bytes counted. `doing` says what is refused ("start work").
 */
export async function checkDiskQuota(args: {
  layout: StickLayout;
  user: string;
  quotaMiB: number | undefined;
  adding: readonly DiskAddition[];
  doing: string;
  usedBytes?: number;
}): Promise<number> {
  const usedBytes = args.usedBytes ?? (await userDiskBytes(args.layout, args.user));
  if (args.quotaMiB === undefined) return usedBytes;
  const addBytes = args.adding.reduce((sum, add) => sum + add.bytes, 0);
  if (usedBytes + addBytes <= args.quotaMiB * MiB) return usedBytes;
  const adds = args.adding.map((add) => `${add.what} (${mib(add.bytes)} MiB)`).join(' and ');
  throw new DiskQuotaError(
    `${args.user}'s disk quota is ${args.quotaMiB} MiB: their guests hold ${mib(usedBytes)} MiB on the stick${adds ? `, and ${args.doing} would add ${adds}` : ''}`,
    {
      hint: `free room (launcher guest uninstall or delete a guest's data, or empty /host files), or ask the stick's owner for more; nothing was changed`,
      details: { user: args.user, quotaMiB: args.quotaMiB, usedMiB: mib(usedBytes), adding: args.adding },
    },
  );
}
