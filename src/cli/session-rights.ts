// Rights on the commands that reach a running (or ready) session: stop,
// eject, exec, console, login and the guest power verbs. On a stick with an
// owner (src/guests/guest-admins.ts) the person signs in first (--user,
// --passphrase-stdin, or a terminal's prompt) and needs the right on the
// guest the session runs; without an owner nothing is asked, as before.
import { NotPermittedError } from '../errors.ts';
import type { Right } from '../guests/guest-admins.ts';
import type { StickLayout } from '../stick/layout.ts';
import type { Output } from './output.ts';

export interface SignInFlags {
  user?: string;
  passphraseStdin?: boolean;
}

/**
 * Signs the person in when the stick has an owner (or --user is given) and
 * checks `right` on `guest`; the signed-in name, if any. Exit 32 when not permitted.
 */
export async function requireRight(
  out: Output,
  layout: StickLayout,
  flags: SignInFlags,
  ask: { guest: string | undefined; right: Right; says: string; sessionUser?: string | undefined },
): Promise<string | undefined> {
  const { readAdmins, authorize } = await import('../guests/guest-admins.ts');
  const admins = await readAdmins(layout);
  let user: string | undefined;
  if (flags.user !== undefined || flags.passphraseStdin || admins.owner !== undefined) {
    if (admins.owner !== undefined && flags.user === undefined && !flags.passphraseStdin && !process.stdin.isTTY)
      throw new NotPermittedError(`this stick has an owner: ${ask.says} needs a sign-in`, {
        hint: 'add --user NAME (and --passphrase-stdin in a script)',
        details: { reason: 'sign-in' },
      });
    const { loginForLaunch } = await import('./login.ts');
    const unlocked = await loginForLaunch(out, layout.root, flags);
    unlocked.diskKey.fill(0);
    user = unlocked.name;
  }
  if (ask.guest !== undefined) authorize(admins, user, { guest: ask.guest, right: ask.right, says: ask.says });
  // Into a session (exec, console, login) a guest administrator reaches only their own: another user's runs with that user's data.
  if (ask.guest !== undefined && admins.owner !== undefined && user !== admins.owner && ask.sessionUser !== undefined && ask.sessionUser !== user)
    throw new NotPermittedError(`${user} may not ${ask.says} ${ask.guest}: it runs ${ask.sessionUser}'s session`, {
      hint: `only ${ask.sessionUser} or the stick's owner (${admins.owner}) may`,
      details: { reason: 'right', user, guest: ask.guest, sessionUser: ask.sessionUser },
    });
  if (ask.guest === undefined && admins.owner !== undefined && user !== admins.owner) authorize(admins, user, { global: ask.says });
  return user;
}

/** --user and --passphrase-stdin on a command that reaches a session. */
export function signInOptions<T extends { option: (flags: string, description: string) => T }>(command: T): T {
  return command
    .option('--user <name>', 'sign in as this user (needed on a stick with an owner)')
    .option('--passphrase-stdin', 'read the passphrase from the first line of stdin (for scripts)');
}
