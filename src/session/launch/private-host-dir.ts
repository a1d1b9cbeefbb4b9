// A private folder on the host for a session's sockets (the checked base's
// NBD socket, QEMU's VNC socket). It is made the way the control socket's is
// (0700, `pocketvm-*`), recorded in the stick lock so that the launch that
// takes the lock of a launcher killed outright removes it (src/stick/lock.ts,
// removeLeftovers), and removed at teardown: the host is left as found.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { currentHostAdapter } from '../../hostprobe/current-host.ts';
import type { StickLock } from '../../stick/lock.ts';
import type { Teardown } from './teardown.ts';

/** Makes the folder once, on first use, for every socket of the launch. */
export function privateHostDir(lock: Pick<StickLock, 'recordHostDir'>, teardown: Teardown): () => Promise<string> {
  let made: Promise<string> | undefined;
  return () =>
    (made ??= (async () => {
      // Windows' control endpoint is a named pipe, with no folder: a private temporary one there.
      const dir = (await currentHostAdapter().controlEndpoint()).privateDir ?? (await mkdtemp(join(tmpdir(), 'pocketvm-')));
      teardown.add(() => rm(dir, { recursive: true, force: true }));
      await lock.recordHostDir(dir);
      return dir;
    })());
}
