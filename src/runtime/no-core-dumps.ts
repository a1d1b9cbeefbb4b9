// No core dump of the launcher may hold key material (the unwrapped disk
// key, the state key, a passphrase being typed). Node offers neither
// setrlimit nor prctl, and this project ships no native addon of its own, so
// on Linux two things a process can do without one:
//   - /proc/self/coredump_filter = 0: a dump, if one is written, holds no
//     memory mapping (heap, stacks, files); children (QEMU) inherit it;
//   - RLIMIT_CORE 0 (soft and hard) through util-linux's prlimit(1) aimed at
//     this process (same user: allowed); children inherit it too.
// PR_SET_DUMPABLE 0, which needs prctl(2) in the process itself, is done
// through koffi in not-dumpable.ts (and for QEMU by its preload object); so
// is RLIMIT_CORE on macOS. Windows: nothing here.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { nodePlatform, platformOf } from '../platform/current.ts';
import { findOnPath } from '../platform/find-on-path.ts';

export interface CoreDumpGuard {
  /** coredump_filter set to 0. */
  filter: boolean;
  /** RLIMIT_CORE lowered to 0. */
  rlimit: boolean;
}

/** Turns core dumps off for this process and what it starts later; says what worked. */
export function disableCoreDumps(platform: NodeJS.Platform = nodePlatform()): CoreDumpGuard {
  if (!platformOf(platform)?.procCoreDumpControls) return { filter: false, rlimit: false };
  let filter = false;
  try {
    writeFileSync('/proc/self/coredump_filter', '0');
    filter = true;
  } catch {
    // no /proc (a container without it): the limit below still holds
  }
  const prlimit = findOnPath('prlimit');
  const rlimit = prlimit !== undefined && spawnSync(prlimit, ['--pid', String(process.pid), '--core=0:0'], { stdio: 'ignore', timeout: 5_000 }).status === 0;
  return { filter, rlimit };
}
