// The guest's screen (`run --display page|window`): a display card, a
// pointer and the clipboard port (src/vmm/qemu-args.ts), and on the kernel
// command line a console on the screen as well as the serial line (the serial
// console stays /dev/console: `console=ttyS0` is named again after `tty0`, and
// the last one named is the console) and `pocketvm.display=1`, which starts the
// default guest's shell on tty1 as the person. For the page, QEMU's VNC
// listens on a UNIX socket in the session's private host folder, which only
// this user can enter (created 0700, removed at teardown, and by the next
// launch if this one is killed outright): never a TCP port.
import { join } from 'node:path';
import type { DisplaySpec } from '../../vmm/machine-spec.ts';
import type { LaunchFeature } from '../launch/feature.ts';

/**
 * What the launch asks of the screen: served to the console page, or QEMU's
 * own window (its UI backend). `onScreen` hears the VNC socket as soon as
 * QEMU listens on it (still paused), so the page shows the boot instead of
 * waiting for the guest to be ready.
 */
export type DisplayRequest = { kind: 'page'; onScreen?: (vncSocket: string) => void } | { kind: 'window'; backend: string };

export const DISPLAY_CMDLINE_WORDS = ['console=tty0', 'console=ttyS0', 'pocketvm.display=1'] as const;

export interface DisplayFeature {
  feature: LaunchFeature;
  /** The VNC socket the console page bridges (page only). */
  vncSocket?: string;
}

/** `hostDir` is the session's private host folder (src/session/launch/private-host-dir.ts), which its owner removes. */
export async function displayFeature(request: DisplayRequest, hostDir: () => Promise<string>): Promise<DisplayFeature> {
  if (request.kind === 'window') {
    const display: DisplaySpec = { kind: 'window', backend: request.backend, clipboard: true };
    return { feature: { name: 'display', display, cmdline: DISPLAY_CMDLINE_WORDS } };
  }
  // Only this user can reach the folder (0700): QEMU's VNC server asks no password of whoever connects.
  const vncSocket = join(await hostDir(), 'vnc.sock');
  const display: DisplaySpec = { kind: 'vnc', socket: vncSocket, clipboard: true };
  const attach = async () => request.onScreen?.(vncSocket);
  return { feature: { name: 'display', display, cmdline: DISPLAY_CMDLINE_WORDS, attach }, vncSocket };
}
