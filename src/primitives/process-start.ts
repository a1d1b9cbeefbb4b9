// When a process started, to tell a lock's holder from a later process that
// was given its pid: /proc/<pid>/stat field 22, in clock ticks since boot
// (unlike wall-clock times it does not move when the clock is set). Where
// /proc does not exist, or the process is gone: undefined.
import { readFileSync } from 'node:fs';

export function processStartTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    return Number.isFinite(ticks) ? ticks : undefined;
  } catch {
    return undefined;
  }
}
