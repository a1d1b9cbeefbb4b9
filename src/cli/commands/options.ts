// Options shared by several commands, declared once.
import { type Command, Option } from 'commander';
import { ACCELERATORS_BY_HOST } from '../../vmm/machine-spec.ts';

const accelerators = ['auto', ...new Set(Object.values(ACCELERATORS_BY_HOST).flat())];

export function stickOption(command: Command): Command {
  return command.option('--stick <dir>', 'the stick to use (default: the stick the launcher is on; ./demo-stick in a checkout)');
}

export function guestOption(command: Command): Command {
  return command.option('--guest <name>', 'the guest to use', 'default');
}

/** For commands that reach the running session: no default, so leaving it out means "whichever runs". */
export function runningGuestOption(command: Command): Command {
  return command.option(
    '--guest <name>',
    'the running guest to act on (default: the one that runs; several running: exec and stop need it, status and eject act on all)',
  );
}

export function jsonOption(command: Command): Command {
  return command.option('--json', 'print the result as JSON on stdout');
}

export function acceleratorOption(command: Command): Command {
  return command.addOption(new Option('--accel <name>', 'accelerator: auto tries the best one and falls back to tcg').choices(accelerators).default('auto'));
}
