// Two levels of administration (seed 003's global and zone administrators):
// the stick's owner is the global administrator, who creates, installs,
// configures and deletes guests and grants rights; a guest administrator is a
// user granted rights on named guests. Checked after the person signs in; a
// stick with no owner has one level only (whoever holds the stick), as before.
//
//   guests/admins.json   { owner, grants: { user: { guest: [rights] } }, quotas: { user: { memoryMiB, diskMiB } } }
import { NotPermittedError, UsageError } from '../errors.ts';
import { adminsFile, guestsRoot, type StickLayout } from '../stick/layout.ts';
import { readJson, writeJson } from './guest-store.ts';
import type { GuestView } from './guest-view.ts';
import type { UserQuota } from '../session/user-quotas.ts';

/** login: run it and exec in it; manage: its configuration; clone: copy it; export, suspend: as named. */
export const RIGHTS = ['login', 'manage', 'clone', 'export', 'suspend'] as const;
export type Right = (typeof RIGHTS)[number];

export interface Admins {
  owner?: string;
  grants: Record<string, Record<string, Right[]>>;
  /** Per-user limits the owner set (src/session/user-quotas.ts). */
  quotas?: Record<string, UserQuota>;
}

export async function readAdmins(layout: StickLayout): Promise<Admins> {
  return (await readJson<Admins>(adminsFile(layout))) ?? { grants: {} };
}

export async function writeAdmins(layout: StickLayout, admins: Admins): Promise<void> {
  const { mkdir } = await import('node:fs/promises');
  await mkdir(guestsRoot(layout), { recursive: true });
  await writeJson(adminsFile(layout), admins);
}

/** What a command asks: the stick's global configuration, or a right on one guest. */
export type Ask = { global: string } | { guest: string; right: Right; says: string };

/**
 * Throws unless `user` (the signed-in user, if any) may do `ask`. Without an
 * owner everything is allowed; with one, nobody unsigned, the owner
 * everything, anyone else only what was granted to them.
 */
export function authorize(admins: Admins, user: string | undefined, ask: Ask): void {
  if (admins.owner === undefined || user === admins.owner) return;
  if (user === undefined)
    throw new NotPermittedError('this stick has an owner: sign in first', {
      hint: 'add --user NAME (and --passphrase-stdin in a script)',
      details: { reason: 'sign-in' },
    });
  if ('global' in ask)
    throw new NotPermittedError(`${user} may not ${ask.global}: that is the stick owner's (${admins.owner})`, {
      hint: `ask ${admins.owner}`,
      details: { reason: 'global', user, owner: admins.owner },
    });
  const rights = admins.grants[user]?.[ask.guest];
  // A guest not granted at all is not named back as existing: it is as if there were none.
  if (!rights)
    throw new NotPermittedError(`${user} has no guest named ${ask.guest}`, {
      hint: 'launcher guest list shows your guests',
      details: { reason: 'right', user, guest: ask.guest },
    });
  if (!rights.includes(ask.right))
    throw new NotPermittedError(`${user} may not ${ask.says} ${ask.guest}: the right "${ask.right}" was not granted (granted: ${rights.join(', ')})`, {
      hint: `ask ${admins.owner} to grant it: launcher guest grant ${user} ${ask.guest} ${ask.right}`,
      details: { reason: 'right', user, guest: ask.guest, right: ask.right, granted: rights },
    });
}

/** The guests `user` may see: all for the owner (or without one), the granted ones for anyone else. */
export function visibleTo(admins: Admins, user: string | undefined, guests: GuestView[]): GuestView[] {
  if (admins.owner === undefined || user === admins.owner) return guests;
  if (user === undefined) authorize(admins, user, { global: 'list the guests' });
  const granted = admins.grants[user ?? ''] ?? {};
  return guests.filter((guest) => granted[guest.name] !== undefined);
}

export function grant(admins: Admins, user: string, guest: string, rights: Right[]): Admins {
  const mine = new Set(admins.grants[user]?.[guest] ?? []);
  for (const right of rights) mine.add(right);
  return { ...admins, grants: { ...admins.grants, [user]: { ...admins.grants[user], [guest]: RIGHTS.filter((r) => mine.has(r)) } } };
}

/** Removes `rights` (all when empty) of `user` on `guest`. */
export function revoke(admins: Admins, user: string, guest: string, rights: Right[]): Admins {
  const mine = (admins.grants[user]?.[guest] ?? []).filter((right) => rights.length > 0 && !rights.includes(right));
  const forUser = { ...admins.grants[user] };
  if (mine.length > 0) forUser[guest] = mine;
  else delete forUser[guest];
  const grants = { ...admins.grants, [user]: forUser };
  if (Object.keys(forUser).length === 0) delete grants[user];
  return { ...admins, grants };
}

/** A guest removed: nobody keeps rights on it (a new guest of the same name starts with none). */
export function forgetGuest(admins: Admins, guest: string): Admins {
  let next = admins;
  for (const user of Object.keys(admins.grants)) next = revoke(next, user, guest, []);
  return next;
}

export function parseRights(words: string[]): Right[] {
  const bad = words.filter((word) => !(RIGHTS as readonly string[]).includes(word));
  if (bad.length > 0 || words.length === 0)
    throw new UsageError(
      `${bad.length > 0 ? `"${bad.join('", "')}" ${bad.length === 1 ? 'is not a right' : 'are not rights'}` : 'no right named'}; nothing was changed`,
      `the rights are ${RIGHTS.join(', ')}`,
    );
  return words as Right[];
}
