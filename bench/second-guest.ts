// bench/second-guest: what the launcher costs for a second guest running from
// the same stick (docs/guests.md, "Several at once"), against a bare QEMU of
// the same size booted in the same run and idling at the same time.
//
//   setup:    a stick with the default guest and a second guest `play`
//             (`guest create play --from default`); the default guest runs
//             first, then play: play is the second running guest measured
//   launcher: play's session process (the detached `launcher session`, Node)
//             and its QEMU: resident memory (VmRSS; QEMU's split into
//             anonymous, file and shared: its RAM is a shared file for placed
//             reads, touched whole at start) and CPU time over a fixed idle
//             window (utime + stime from /proc/<pid>/stat)
//   baseline: qemu-system-x86_64 started by hand with the same kernel,
//             initramfs, memory, vCPUs and CPU model (TCG), its agent port on
//             a socket nobody connects to, booted to POCKETVM_READY,
//             measured over the same windows, side by side
//
// `--runs N` idle windows (default 3) of `--window S` seconds (default 20).
// Prints medians and ratios; never fails on a time.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { openGuestPayload } from '../src/payload/guest-payload.ts';
import { READY_MARKER } from '../src/vmm/console-tap.ts';
import { benchOptions, median, numberOption } from './bench-options.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const { runs, json, say } = benchOptions(3);
const windowSeconds = numberOption('--window', 20);
const launcher = join(root, 'launcher');
const PASSPHRASE = 'bench passphrase';
const CLOCK_TICKS = Number(String((await execa('getconf', ['CLK_TCK'], { reject: false })).stdout).trim()) || 100;

interface Memory {
  rssMiB: number;
  anonMiB: number;
  fileMiB: number;
  shmemMiB: number;
}

function memoryOf(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  const mib = (value: number) => Math.round((value / 1024) * 10) / 10;
  return { rssMiB: mib(kib('VmRSS')), anonMiB: mib(kib('RssAnon')), fileMiB: mib(kib('RssFile')), shmemMiB: mib(kib('RssShmem')) };
}

/** CPU time the process (all its threads) has used, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** The QEMU whose parent is `pid` (the session's own QEMU; setpriv execs into it). */
async function childQemu(pid: number): Promise<number> {
  const { stdout } = await execa('ps', ['-o', 'pid=,comm=', '--ppid', String(pid)], { reject: false });
  const line = String(stdout)
    .split('\n')
    .find((row) => row.includes('qemu-system'));
  if (!line) throw new Error(`no QEMU under session pid ${pid}`);
  return Number(line.trim().split(/\s+/)[0]);
}

async function run(args: string[], input?: string): Promise<string> {
  const result = await execa(launcher, args, { reject: false, ...(input === undefined ? {} : { input }) });
  if (result.exitCode !== 0) throw new Error(`launcher ${args.join(' ')} failed (${result.exitCode}): ${String(result.stderr)}`);
  return String(result.stdout);
}

/** Bare QEMU booted to the ready marker and left running; the caller kills it. */
async function bareQemu(kernel: string, initrd: string, cmdline: string, memoryMiB: number, cpus: number): Promise<{ pid: number; kill: () => void }> {
  // The launcher's CPU model; the agent's port on a socket nobody connects to (as with bench/boot's
  // null chardev, this guest idles at 13-21 % CPU here against under 1 % for the launcher's QEMU:
  // its guest has no agent peer, no namespace card, no registry port; not pinned down further).
  const agentSocket = join(parent, 'bare-agent.sock');
  const args = [
    ...['-nodefaults', '-no-user-config', '-display', 'none', '-machine', 'q35', '-accel', 'tcg', '-cpu', 'Nehalem'],
    ...['-m', `${memoryMiB}M`, '-smp', String(cpus), '-kernel', kernel, '-initrd', initrd, '-append', cmdline, '-serial', 'stdio'],
    ...[
      '-device',
      'virtio-serial-pci,id=vser0',
      '-chardev',
      `socket,id=agent,path=${agentSocket},server=on,wait=off`,
      '-device',
      'virtserialport,bus=vser0.0,chardev=agent,name=org.qemu.guest_agent.0',
    ],
  ];
  const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'ignore'] });
  const kill = () => void child.kill('SIGKILL');
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    child.stdout.on('data', (chunk: Buffer) => {
      seen = (seen + chunk.toString('latin1')).slice(-512);
      if (seen.includes(READY_MARKER)) resolve();
    });
    child.on('exit', (code) => reject(new Error(`bare QEMU exited (${code}) before ${READY_MARKER}`)));
  });
  // Keep reading its console so it never blocks on a full pipe.
  child.stdout.resume();
  return { pid: child.pid!, kill };
}

const parent = await mkdtemp(join(tmpdir(), 'pocketvm-bench-'));
const stick = join(parent, 'stick');
const on = ['--stick', stick];
let bare: { pid: number; kill: () => void } | undefined;
try {
  say(`bench/second-guest: preparing a stick in ${stick}`);
  await run(['init-stick', stick]);
  await run(['user', 'add', 'bench', '--passphrase-stdin', ...on], `${PASSPHRASE}\n`);
  await run(['guest', 'create', 'play', '--from', 'default', ...on]);
  await run(['guest', 'install', 'play', ...on]);
  say('booting the first guest (default), then the second (play)');
  for (const guest of ['default', 'play']) await run(['run', '--detach', '--guest', guest, '--user', 'bench', '--passphrase-stdin', ...on], `${PASSPHRASE}\n`);
  const status = JSON.parse(await run(['status', '--guest', 'play', '--json', ...on])) as { pid: number; qemuPid: number; memoryMiB: number; cpus: number };
  const session = status.pid;
  const qemu = status.qemuPid || (await childQemu(session));
  const payload = await openGuestPayload(join(stick, 'payload'), 'default');
  say(`booting a bare QEMU of the same size (${status.memoryMiB} MiB, ${status.cpus} vCPU)`);
  bare = await bareQemu(payload.kernel, payload.initrd, payload.manifest.cmdline, status.memoryMiB, status.cpus);
  // Let both settle after their boots before the first window.
  await new Promise((resolve) => setTimeout(resolve, 5000));

  const windows: Array<{ session: Memory & { cpuPct: number }; qemu: Memory & { cpuPct: number }; bare: Memory & { cpuPct: number } }> = [];
  for (let i = 0; i < runs; i++) {
    const pids = { session, qemu, bare: bare.pid };
    const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)])) as Record<keyof typeof pids, number>;
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, windowSeconds * 1000));
    const seconds = (performance.now() - started) / 1000;
    const measure = (name: keyof typeof pids) => ({
      ...memoryOf(pids[name]),
      cpuPct: Math.round(((cpuSeconds(pids[name]) - before[name]) / seconds) * 1000) / 10,
    });
    windows.push({ session: measure('session'), qemu: measure('qemu'), bare: measure('bare') });
    const last = windows.at(-1)!;
    say(
      `window ${i + 1}/${runs} (${windowSeconds} s): session ${last.session.rssMiB} MiB ${last.session.cpuPct} % CPU; its QEMU ${last.qemu.rssMiB} MiB (shared ${last.qemu.shmemMiB}) ${last.qemu.cpuPct} %; bare QEMU ${last.bare.rssMiB} MiB ${last.bare.cpuPct} %`,
    );
  }
  const med = (pick: (window: (typeof windows)[number]) => number) => Math.round(median(windows.map(pick)) * 10) / 10;
  const ratio = (a: number, b: number) => (b > 0 ? Number((a / b).toFixed(3)) : null);
  const figures = {
    guest: 'play (second running guest)',
    memoryMiB: status.memoryMiB,
    cpus: status.cpus,
    windowSeconds,
    windows: runs,
    session: { rssMiB: med((w) => w.session.rssMiB), cpuPct: med((w) => w.session.cpuPct) },
    launcherQemu: {
      rssMiB: med((w) => w.qemu.rssMiB),
      anonMiB: med((w) => w.qemu.anonMiB),
      shmemMiB: med((w) => w.qemu.shmemMiB),
      cpuPct: med((w) => w.qemu.cpuPct),
    },
    bareQemu: { rssMiB: med((w) => w.bare.rssMiB), anonMiB: med((w) => w.bare.anonMiB), cpuPct: med((w) => w.bare.cpuPct) },
  };
  const totalRss = figures.session.rssMiB + figures.launcherQemu.rssMiB;
  const totalCpu = figures.session.cpuPct + figures.launcherQemu.cpuPct;
  const ratios = {
    sessionRssToBareQemu: ratio(figures.session.rssMiB, figures.bareQemu.rssMiB),
    totalRssToBareQemu: ratio(totalRss, figures.bareQemu.rssMiB),
    sessionCpuToBareQemu: ratio(figures.session.cpuPct, figures.bareQemu.cpuPct),
    totalCpuToBareQemu: ratio(totalCpu, figures.bareQemu.cpuPct),
  };
  if (json) process.stdout.write(`${JSON.stringify({ secondGuest: figures, ratios }, null, 2)}\n`);
  else {
    const lines = [
      `second running guest (${figures.memoryMiB} MiB, ${figures.cpus} vCPU), median of ${runs} idle windows of ${windowSeconds} s:`,
      `  launcher session process   ${figures.session.rssMiB} MiB RSS, ${figures.session.cpuPct} % CPU`,
      `  its QEMU                   ${figures.launcherQemu.rssMiB} MiB RSS (${figures.launcherQemu.anonMiB} anonymous, ${figures.launcherQemu.shmemMiB} shared guest RAM), ${figures.launcherQemu.cpuPct} % CPU`,
      `  bare QEMU (baseline)       ${figures.bareQemu.rssMiB} MiB RSS (${figures.bareQemu.anonMiB} anonymous), ${figures.bareQemu.cpuPct} % CPU`,
      `  session alone / bare QEMU: memory ${ratios.sessionRssToBareQemu} x, CPU ${ratios.sessionCpuToBareQemu ?? 'n/a'} x`,
      `  session + its QEMU / bare QEMU: memory ${ratios.totalRssToBareQemu} x, CPU ${ratios.totalCpuToBareQemu ?? 'n/a'} x`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  }
} finally {
  bare?.kill();
  await execa(launcher, ['eject', ...on], { reject: false });
  for (const guest of ['default', 'play']) await execa(launcher, ['stop', '--force', '--guest', guest, ...on], { reject: false });
  await rm(parent, { recursive: true, force: true });
}
