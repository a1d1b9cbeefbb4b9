// Runs a command as the unprivileged user nobody (util-linux setpriv), for
// tests that observe what the kernel does to a non-root process.
export const NOBODY = 65534;

/** [command, args] that run `command args` as nobody with no supplementary groups. */
export function runAsNobody(command: string, args: string[]): [string, string[]] {
  return ['setpriv', ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', '--', command, ...args]];
}
