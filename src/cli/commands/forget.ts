// `launcher forget`: remove a passphrase remembered on this host
// (--remember-on-this-host) from the host's keychain.
import type { Command } from 'commander';
import { openStick, resolveStickRoot } from '../../stick/stick-root.ts';
import type { Output } from '../output.ts';
import { jsonOption, stickOption } from './options.ts';

export function registerForget(program: Command, output: () => Output): void {
  const command = program
    .command('forget')
    .description("remove a user's passphrase from this host's keychain (see run --remember-on-this-host)")
    .option('--user <name>', 'the user (default: every user on this stick)');
  stickOption(command);
  jsonOption(command);
  command.action(async (options: { stick?: string; user?: string; json?: boolean }) => {
    const out = output();
    const layout = await openStick(resolveStickRoot(options.stick));
    const [{ listUsers, userPaths }, { readUserFile }, keychain] = await Promise.all([
      import('../../auth/users.ts'),
      import('../../auth/user-file.ts'),
      import('../../auth/keychain.ts'),
    ]);
    const absent = keychain.keychainAbsentReason();
    if (absent) {
      out.data({ forgotten: [], keychain: false, reason: absent });
      out.line(`${absent}; nothing changed`);
      return;
    }
    const names = options.user ? [options.user] : (await listUsers(layout)).filter((u) => !u.problem).map((u) => u.name);
    const forgotten: string[] = [];
    for (const name of names) {
      const file = await readUserFile(userPaths(layout, name).file, name);
      try {
        if (await keychain.forgetPassphrase(keychain.keychainAccount(file))) forgotten.push(name);
      } catch (error) {
        out.data({ forgotten, keychain: false, reason: (error as Error).message });
        out.line(`${(error as Error).message}; nothing changed`);
        return;
      }
    }
    out.data({ forgotten, keychain: true });
    out.line(forgotten.length ? `forgot the passphrase of ${forgotten.join(', ')} on this host` : 'no passphrase was remembered on this host');
  });
}
