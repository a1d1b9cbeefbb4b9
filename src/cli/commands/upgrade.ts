// `launcher upgrade --guest NAME`: move a user's system onto the image guest's
// current base (docs/images.md, "A newer base"). Their system overlay is
// deleted (the changes they made to the system itself); their home, registry
// and tables stay.
import type { Command } from 'commander';
import { UsageError } from '../../errors.ts';
import { openStick, resolveStickRoot } from '../../stick/stick-root.ts';
import type { Output } from '../output.ts';
import { requireStickUser } from '../stick-user.ts';
import { guestOption, jsonOption, stickOption } from './options.ts';

export function registerUpgrade(program: Command, output: () => Output): void {
  const command = program
    .command('upgrade')
    .description("move a user's system onto an image guest's newer base: their changes to the system go, their home stays")
    .option('--user <name>', "whose system (default: the stick's only user)")
    .option('--yes', 'do not ask for confirmation');
  guestOption(command);
  stickOption(command);
  jsonOption(command);
  command.action(async (options: { stick?: string; user?: string; guest: string; yes?: boolean }) => {
    const out = output();
    const layout = await openStick(resolveStickRoot(options.stick));
    const user = await requireStickUser(layout, options.user);
    const warning = `upgrading ${user}'s ${options.guest} system deletes every change they made to the system itself (installed packages, /etc); their home, registry and tables stay`;
    if (!options.yes) {
      if (!process.stdin.isTTY) throw new UsageError(`${warning}; nothing was changed`, 'confirm with --yes');
      out.notice(warning);
      const { confirm } = await import('@inquirer/prompts');
      if (!(await confirm({ message: `upgrade ${user}'s ${options.guest} system?`, default: false }, { output: process.stderr }))) {
        out.line('nothing was changed');
        return;
      }
    }
    const { upgradeSystem } = await import('../../stick/system-bases.ts');
    const result = await upgradeSystem(layout, options.guest, user);
    out.data({ user, guest: options.guest, ...result });
    out.line(
      result.upgraded
        ? `${user}'s ${options.guest} system starts afresh on the current base at the next launch${result.removedBases.length ? ` (${result.removedBases.length} older base removed from the stick)` : ''}`
        : `${user}'s ${options.guest} system is already on the current base; nothing was changed`,
    );
  });
}
