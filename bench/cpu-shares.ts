// Where a bench's host CPU time goes (Linux /proc): the CPU seconds of a
// process and its descendants, with QEMU's vCPU threads ("CPU n/TCG" or
// "CPU n/KVM") apart from its other threads (main loop, VNC, I/O workers).
// On a 2-core host the vCPU takes one core; everything else shares the other,
// so "who used the other core during the boot" is what these figures say.
import { readdirSync, readFileSync } from 'node:fs';

/** USER_HZ: the unit of /proc's CPU times, 100 on every Linux this runs on (`getconf CLK_TCK`). */
const clockTicks = 100;

interface ProcStat {
  pid: number;
  ppid: number;
  comm: string;
  /** utime + stime in clock ticks (live threads' and exited threads' of this process). */
  ticks: number;
}

function readStat(path: string): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'latin1');
  } catch {
    return undefined; // gone meanwhile
  }
  // comm may hold spaces and parentheses: the fields after it start at the last ")".
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  const fields = text.slice(close + 2).split(' ');
  return { pid: Number(text.slice(0, text.indexOf(' '))), ppid: Number(fields[1]), comm, ticks: Number(fields[11]) + Number(fields[12]) };
}

function allProcesses(): ProcStat[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map((pid) => readStat(`/proc/${pid}/stat`))
    .filter((stat): stat is ProcStat => stat !== undefined);
}

/** CPU seconds so far, by part: `qemu vCPU`, `qemu other`, and each root's name for the rest of its tree. */
export function cpuSeconds(roots: Record<string, number>): Record<string, number> {
  const processes = allProcesses();
  const children = new Map<number, ProcStat[]>();
  for (const p of processes) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const seconds: Record<string, number> = {};
  const add = (part: string, ticks: number) => (seconds[part] = (seconds[part] ?? 0) + ticks / clockTicks);
  for (const [name, rootPid] of Object.entries(roots)) {
    const root = processes.find((p) => p.pid === rootPid);
    const stack = root ? [root] : [];
    while (stack.length) {
      const p = stack.pop()!;
      stack.push(...(children.get(p.pid) ?? []));
      if (!p.comm.startsWith('qemu-system')) {
        add(name, p.ticks);
        continue;
      }
      let vcpu = 0;
      let threads: string[] = [];
      try {
        threads = readdirSync(`/proc/${p.pid}/task`);
      } catch {
        // gone meanwhile
      }
      for (const tid of threads) {
        const thread = readStat(`/proc/${p.pid}/task/${tid}/stat`);
        if (thread && /^CPU \d+\/(TCG|KVM)$/.test(thread.comm)) vcpu += thread.ticks;
      }
      add('qemu vCPU', vcpu);
      add('qemu other', p.ticks - vcpu);
    }
  }
  return seconds;
}

/** `after - before`, part by part, rounded to 0.1 s. */
export function cpuSpent(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([part, s]) => [part, Number((s - (before[part] ?? 0)).toFixed(1))]));
}

export function describeCpu(spent: Record<string, number>): string {
  return Object.entries(spent)
    .map(([part, s]) => `${part} ${s.toFixed(1)} s`)
    .join(', ');
}
