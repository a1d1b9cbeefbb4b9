// Whose files a command works on when it needs a user but no login: the user
// named with --user (who must exist), else the stick's only user.
import { AuthError, UsageError } from '../errors.ts';
import type { StickLayout } from '../stick/layout.ts';

/** --user NAME (must exist), else the stick's only user, else undefined. */
export async function findStickUser(layout: StickLayout, requested: string | undefined): Promise<string | undefined> {
  const { listUsers, userExists, checkUserName } = await import('../auth/users.ts');
  if (requested !== undefined) {
    checkUserName(requested);
    if (!(await userExists(layout, requested))) {
      throw new AuthError(`there is no user "${requested}" on this stick`, {
        hint: 'launcher user list shows the users',
        details: { reason: 'unknown-user', user: requested },
      });
    }
    return requested;
  }
  const users = await listUsers(layout);
  return users.length === 1 ? users[0]!.name : undefined;
}

/** As findStickUser, but a usage error when it is not clear whose registry is meant. */
export async function requireStickUser(layout: StickLayout, requested: string | undefined): Promise<string> {
  const user = await findStickUser(layout, requested);
  if (user !== undefined) return user;
  const { listUsers } = await import('../auth/users.ts');
  const users = await listUsers(layout);
  if (users.length === 0) throw new UsageError('there are no users on this stick, so there is no registry', 'launcher user add NAME creates one');
  throw new UsageError(`this stick has ${users.length} users; say whose registry with --user NAME`, `users: ${users.map((u) => u.name).join(', ')}`);
}
