// `launcher stop`: shut the running guest down through the ladder (agent →
// ACPI → quit → kill), or at once with --force.
import type { Command } from 'commander';
import { NoSessionError } from '../../errors.ts';
import { sendControl } from '../../session/control-client.ts';
import { stickLayout } from '../../stick/layout.ts';
import { cancelBoot } from '../../session/cancel-boot.ts';
import { resolveStickRoot } from '../../stick/stick-root.ts';
import type { Output } from '../output.ts';
import { jsonOption, runningGuestOption, stickOption } from './options.ts';
import { findOneSession } from '../running-guest.ts';
import { requireRight, signInOptions } from '../session-rights.ts';

export function registerStop(program: Command, output: () => Output): void {
  const command = program.command('stop').description('shut the running guest down').option('--force', 'kill QEMU at once instead of asking the guest');
  stickOption(command);
  runningGuestOption(command);
  jsonOption(command);
  signInOptions(command);
  command.action(async (options: { stick?: string; force?: boolean; guest?: string; user?: string; passphraseStdin?: boolean }) => {
    const out = output();
    // The guest's own session (several may run at once): its lock says where its control server is.
    const stick = stickLayout(resolveStickRoot(options.stick));
    const { holder, layout } = await findOneSession(stick, options.guest, 'stop');
    // On a stick with an owner: signed in, with the right to manage the guest that runs (src/cli/session-rights.ts).
    await requireRight(out, stick, options, { guest: holder.guest, right: 'manage', says: 'stop' });
    // A boot in progress has no control server yet: cancelling it is stopping it.
    if (!holder.control && holder.state !== 'stopping') {
      const result = await cancelBoot(layout, holder);
      out.data(result);
      out.line(
        `cancelled the boot of ${holder.guest ?? 'the guest'} (session pid ${holder.pid}) in ${(result.ms / 1000).toFixed(1)} s; QEMU is stopped and the stick released`,
      );
      return;
    }
    try {
      const result = await sendControl(layout, 'stop', { force: options.force === true });
      out.data(result);
      out.line(`stopped in ${(result.ms / 1000).toFixed(1)} s (ended by: ${result.step})`);
    } catch (error) {
      // A session that cannot answer but still holds the stick: --force ends it.
      if (!options.force || error instanceof NoSessionError === false) throw error;
      process.kill(holder.pid, 'SIGKILL');
      out.data({ step: 'kill-session', pid: holder.pid });
      out.line(`killed the unresponsive session (pid ${holder.pid}); QEMU dies with it`);
    }
  });
}
