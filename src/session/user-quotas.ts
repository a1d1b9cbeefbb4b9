// Per-user quotas (issue 19, docs/guests.md "Per-user quotas"): the stick's
// owner caps what each user's guests may take, in memory on the host and in
// space on the stick. They are kept with the grants in guests/admins.json
// (`quotas: { user: { memoryMiB, diskMiB } }`) and set with
// `launcher guest quota USER --memory SIZE --disk SIZE`.
//
// Memory: the user's running guests together (as their session locks record
// their size) may not pass the quota. A guest starting beside them gets at
// most what is left, as the host's own cap (src/session/sizing.ts) does; when
// not even its minimum is left the launch is refused (MemoryQuotaError, 35).
// Disk: see src/session/disk-usage.ts.
//
// The session enforces them, so they live here; src/guests/guest-admins.ts
// keeps the file and `guest quota` sets them through setQuota.
import { readFile } from 'node:fs/promises';
import { MemoryQuotaError, UsageError } from '../errors.ts';
import { adminsFile, type StickLayout } from '../stick/layout.ts';

export interface UserQuota {
  memoryMiB?: number;
  diskMiB?: number;
}

const UNITS: Record<string, number> = { '': 1, m: 1, mb: 1, mib: 1, g: 1024, gb: 1024, gib: 1024, t: 1024 * 1024, tb: 1024 * 1024, tib: 1024 * 1024 };

/** `2G`, `512M`, `1536` (MiB), or `none` (no quota: undefined). Anything else is a usage error naming `what`. */
export function parseQuotaSize(text: string, what: string): number | undefined {
  if (text.trim().toLowerCase() === 'none') return undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined;
  const mib = match && unit !== undefined ? Math.floor(Number(match[1]) * unit) : NaN;
  if (!(mib >= 1))
    throw new UsageError(`"${text}" is not a ${what} quota; nothing was changed`, 'give a size such as 2G or 512M (MiB without a unit), or none to lift it');
  return mib;
}

/** What holds the quotas: admins.json's `quotas` (src/guests/guest-admins.ts Admins). */
interface QuotaHolder {
  quotas?: Record<string, UserQuota>;
}

export function quotaOf(holder: QuotaHolder, user: string): UserQuota {
  return holder.quotas?.[user] ?? {};
}

/** `user`'s quotas as the stick's owner set them in guests/admins.json (none when it is absent). */
export async function readUserQuota(layout: StickLayout, user: string): Promise<UserQuota> {
  let text: string;
  try {
    text = await readFile(adminsFile(layout), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw error;
  }
  return quotaOf(JSON.parse(text) as QuotaHolder, user);
}

/** `change` over `user`'s quota: a key given as undefined lifts that quota. */
export function setQuota<A extends QuotaHolder>(admins: A, user: string, change: Partial<Record<keyof UserQuota, number | undefined>>): A {
  const next: UserQuota = { ...quotaOf(admins, user) };
  for (const key of ['memoryMiB', 'diskMiB'] as const) {
    if (!(key in change)) continue;
    const value = change[key];
    if (value === undefined) delete next[key];
    else next[key] = value;
  }
  const quotas = { ...admins.quotas };
  if (Object.keys(next).length > 0) quotas[user] = next;
  else delete quotas[user];
  return { ...admins, quotas };
}

/** One of the user's guests running now, as its session lock records its size. */
export interface UsersGuest {
  guest: string;
  memoryMiB: number;
}

/**
 * The memory a guest may have under `user`'s memory quota beside their
 * running guests: `wantedMiB` when it fits, else what is left (at least the
 * guest's minimum), else refused. Returns the memory and a line for the
 * sizing log when the quota bound it.
 */
export function fitMemoryQuota(args: {
  user: string;
  guest: string;
  quotaMiB: number | undefined;
  wantedMiB: number;
  minimumMiB: number;
  running: readonly UsersGuest[];
  /** A resumed state has its memory fixed: it fits whole or is refused. */
  fixed?: boolean;
}): { memoryMiB: number; reason?: string } {
  const { user, guest, quotaMiB, wantedMiB, minimumMiB, running } = args;
  if (quotaMiB === undefined) return { memoryMiB: wantedMiB };
  const usedMiB = running.reduce((sum, other) => sum + other.memoryMiB, 0);
  const leftMiB = quotaMiB - usedMiB;
  if (wantedMiB <= leftMiB) return { memoryMiB: wantedMiB };
  const needMiB = args.fixed ? wantedMiB : minimumMiB;
  const others = running.map((other) => `${other.guest} (${other.memoryMiB} MiB)`).join(', ');
  if (needMiB > leftMiB)
    throw new MemoryQuotaError(
      `${user}'s memory quota is ${quotaMiB} MiB: ${running.length > 0 ? `${others} already take${running.length === 1 ? 's' : ''} ${usedMiB} MiB, leaving ${Math.max(0, leftMiB)} MiB` : 'that is all'}, and ${guest} needs ${needMiB} MiB${args.fixed ? ' (its saved state)' : ' at least'}`,
      {
        hint:
          running.length > 0
            ? 'stop one of your guests first (launcher stop --guest NAME), or ask the stick owner for more'
            : "ask the stick's owner for a larger quota",
        details: { user, guest, quotaMiB, usedMiB, neededMiB: needMiB, running },
      },
    );
  return {
    memoryMiB: leftMiB,
    reason: `memory ${leftMiB} MiB: ${user}'s memory quota is ${quotaMiB} MiB${running.length > 0 ? ` and ${others} take ${usedMiB} MiB of it` : ''}`,
  };
}
