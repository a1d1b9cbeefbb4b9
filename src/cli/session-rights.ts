// Rights on the commands that reach a running (or ready) session: stop,
// eject, exec, console, login and the guest power verbs. On a stick with an
// owner (src/guests/guest-admins.ts) the person signs in first (--user,
// --passphrase-stdin, or a terminal's prompt) and needs the right on the
// guest the session runs; without an owner nothing is asked, as before.
import { NotPermittedError } from '../errors.ts';
import type { Admins, authorize, Right } from '../guests/guest-admins.ts';
import type { StickLayout } from '../stick/layout.ts';
import type { Output } from './output.ts';

export interface SignInFlags {
  user?: string;
  passphraseStdin?: boolean;
}

interface RightAsked {
  guest: string | undefined;
  right: Right;
  says: string;
  sessionUser?: string | undefined;
}

/**
 * Signs the person in when the stick has an owner (or --user is given) and
 * checks `right` on `guest`; the signed-in name, if any. Exit 32 when not permitted.
 */
export async function requireRight(out: Output, layout: StickLayout, flags: SignInFlags, ask: RightAsked): Promise<string | undefined> {
  const signedIn = await signInForRights(out, layout, flags, ask.says);
  checkRight(signedIn, ask);
  return signedIn.user;
}

/** The same for several sessions at once (eject of every running guest): one sign-in, each guest checked before any is touched. */
export async function requireRightOnEach(out: Output, layout: StickLayout, flags: SignInFlags, asks: readonly RightAsked[]): Promise<void> {
  const [first] = asks;
  if (!first) return;
  const signedIn = await signInForRights(out, layout, flags, first.says);
  for (const ask of asks) checkRight(signedIn, ask);
}

interface SignedIn {
  admins: Admins;
  user: string | undefined;
  // Loaded with the admins, not at startup: most commands on an ownerless stick never need it.
  authorize: typeof authorize;
}

async function signInForRights(out: Output, layout: StickLayout, flags: SignInFlags, says: string): Promise<SignedIn> {
  const { readAdmins, authorize } = await import('../guests/guest-admins.ts');
  const admins = await readAdmins(layout);
  let user: string | undefined;
  if (flags.user !== undefined || flags.passphraseStdin || admins.owner !== undefined) {
    if (admins.owner !== undefined && flags.user === undefined && !flags.passphraseStdin && !process.stdin.isTTY)
      throw new NotPermittedError(`this stick has an owner: ${says} needs a sign-in`, {
        hint: 'add --user NAME (and --passphrase-stdin in a script)',
        details: { reason: 'sign-in' },
      });
    const { loginForLaunch } = await import('./login.ts');
    const unlocked = await loginForLaunch(out, layout.root, flags);
    unlocked.diskKey.fill(0);
    user = unlocked.name;
  }
  return { admins, user, authorize };
}

function checkRight({ admins, user, authorize }: SignedIn, ask: RightAsked): void {
  if (ask.guest !== undefined) authorize(admins, user, { guest: ask.guest, right: ask.right, says: ask.says });
  // Into a session (exec, console, login) a guest administrator reaches only their own: another user's runs with that user's data.
  if (ask.guest !== undefined && admins.owner !== undefined && user !== admins.owner && ask.sessionUser !== undefined && ask.sessionUser !== user)
    throw new NotPermittedError(`${user} may not ${ask.says} ${ask.guest}: it runs ${ask.sessionUser}'s session`, {
      hint: `only ${ask.sessionUser} or the stick's owner (${admins.owner}) may`,
      details: { reason: 'right', user, guest: ask.guest, sessionUser: ask.sessionUser },
    });
  if (ask.guest === undefined && admins.owner !== undefined && user !== admins.owner) authorize(admins, user, { global: ask.says });
}

/** --user and --passphrase-stdin on a command that reaches a session. */
export function signInOptions<T extends { option: (flags: string, description: string) => T }>(command: T): T {
  return command
    .option('--user <name>', 'sign in as this user (needed on a stick with an owner)')
    .option('--passphrase-stdin', 'read the passphrase from the first line of stdin (for scripts)');
}
