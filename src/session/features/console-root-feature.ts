// `run --root`: the serial console's shell logs in as root instead of the user.
import type { LaunchFeature } from '../launch/feature.ts';

/** On the kernel command line for `run --root`: the console-shell service logs in as root. */
export const CONSOLE_ROOT_CMDLINE_WORD = 'pocketvm.console=root';

export function consoleRootFeature(): LaunchFeature {
  return { name: 'console-root', cmdline: [CONSOLE_ROOT_CMDLINE_WORD] };
}
