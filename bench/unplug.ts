// bench/unplug: how fast pulling the stick out stops the guest.
//
//   removal   a detached session (logged-in user, encrypted home) runs from a
//             stick served through bindfs while the guest writes heavily; the
//             bindfs process is killed (every open file on the "stick" then
//             fails as on a yanked device) and the time until QEMU is dead,
//             and until it is reaped (its /proc entry gone), is measured from
//             outside; then the session process's exit; then a new bindfs on
//             the same directory ("replug") for the next trial, whose launch
//             also runs the recovery check (not timed here)
//   baseline  in the same run, alternating: the payload's kernel booting
//             under bare QEMU (TCG, same memory) is killed with SIGKILL by
//             this process, and the time until it is reaped is measured the
//             same way: the floor any removal handling sits on
//
// Prints medians and the ratio removal/baseline, the presence monitor's poll
// interval for scale, and whether the target (≤ 1 s) is met; never
// fails on a time. `--runs N` (at least 10).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { openGuestPayload } from '../src/payload/guest-payload.ts';
import { processAlive } from '../src/stick/lock.ts';
import { DEFAULT_PRESENCE } from '../src/stick/presence-monitor.ts';
import { benchOptions, median } from './bench-options.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const launcher = join(root, 'launcher');
const { runs, json, say } = benchOptions(10, 10);
const PASSPHRASE = 'unplug bench passphrase';
const TARGET_MS = 1_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(done: () => boolean, limitMs: number): Promise<number> {
  const started = performance.now();
  while (!done()) {
    if (performance.now() - started > limitMs) return Number.NaN;
    await sleep(2);
  }
  return performance.now() - started;
}

if (spawnSync('bindfs', ['--version']).status !== 0) {
  process.stderr.write('bench unplug: bindfs is not installed (apt-get install bindfs): it stands in for a stick that can be pulled out\n');
  process.exit(2);
}

const parent = await mkdtemp(join(tmpdir(), 'pocketvm-bench-unplug-'));
const stickDir = join(parent, 'stick');
const mount = join(parent, 'mnt');
let bindfs: ChildProcess | undefined;

async function plugIn(): Promise<void> {
  spawnSync('fusermount', ['-u', '-z', mount]);
  bindfs = spawn('bindfs', ['-f', stickDir, mount], { stdio: 'ignore' });
  for (let i = 0; i < 500 && spawnSync('mountpoint', ['-q', mount]).status !== 0; i++) await sleep(10);
}

async function run(args: string[], input?: string) {
  return execa(launcher, args, { reject: false, env: { NO_COLOR: '1' }, ...(input === undefined ? { stdin: 'ignore' as const } : { input }) });
}

interface RemovalTrial {
  /** bindfs killed → QEMU dead (its exit seen by the kernel). */
  deadMs: number;
  /** … → QEMU reaped by the session (its /proc entry gone). */
  reapedMs: number;
  /** … → the session process gone. */
  sessionMs: number;
}

async function removalTrial(): Promise<RemovalTrial> {
  await plugIn();
  const started = await run(['run', '--detach', '--json', '--stick', mount, '--user', 'bench', '--passphrase-stdin'], `${PASSPHRASE}\n`);
  if (started.exitCode !== 0) throw new Error(`launcher run failed: ${String(started.stdout)} ${String(started.stderr)}`);
  const status = JSON.parse(String(started.stdout)) as { pid: number; qemuPid: number };
  await run([
    'exec',
    '--stick',
    mount,
    '--',
    'sh',
    '-c',
    'setsid sh -c \'while :; do dd if=/dev/urandom of="$HOME/heavy" bs=1M count=8 conv=fsync 2>/dev/null; done\' </dev/null >/dev/null 2>&1 &',
  ]);
  await sleep(1_500);
  bindfs!.kill('SIGKILL');
  const removedAt = performance.now();
  const since = () => performance.now() - removedAt;
  await until(() => !processAlive(status.qemuPid), 10_000);
  const deadMs = since();
  await until(() => !existsSync(`/proc/${status.qemuPid}`), 10_000);
  const reapedMs = since();
  await until(() => !processAlive(status.pid), 10_000);
  return { deadMs, reapedMs, sessionMs: since() };
}

async function baselineTrial(kernel: string, initrd: string, cmdline: string, memoryMiB: number): Promise<{ deadMs: number; reapedMs: number }> {
  const qemu = spawn(
    'qemu-system-x86_64',
    [
      '-nodefaults',
      '-display',
      'none',
      '-machine',
      'q35',
      '-accel',
      'tcg',
      '-m',
      `${memoryMiB}M`,
      '-kernel',
      kernel,
      '-initrd',
      initrd,
      '-append',
      cmdline,
      '-serial',
      'null',
    ],
    { stdio: 'ignore' },
  );
  const pid = qemu.pid!;
  let reaped = false;
  qemu.once('exit', () => (reaped = true));
  await sleep(1_500);
  qemu.kill('SIGKILL');
  const killedAt = performance.now();
  await until(() => !processAlive(pid), 10_000);
  const deadMs = performance.now() - killedAt;
  await until(() => reaped && !existsSync(`/proc/${pid}`), 10_000);
  return { deadMs, reapedMs: performance.now() - killedAt };
}

try {
  say(`setting up a stick behind bindfs in ${parent}`);
  const made = await run(['init-stick', stickDir]);
  if (made.exitCode !== 0) throw new Error(`init-stick failed: ${String(made.stderr)}`);
  const user = await run(['user', 'add', 'bench', '--passphrase-stdin', '--stick', stickDir], `${PASSPHRASE}\n`);
  if (user.exitCode !== 0) throw new Error(`user add failed: ${String(user.stderr)}`);
  await mkdir(mount);
  const payload = await openGuestPayload(join(root, 'payload'), 'default');

  const removal: RemovalTrial[] = [];
  const baseline: Array<{ deadMs: number; reapedMs: number }> = [];
  for (let i = 0; i < runs; i++) {
    const trial = await removalTrial();
    removal.push(trial);
    const floor = await baselineTrial(payload.kernel, payload.initrd, payload.manifest.cmdline, payload.manifest.memory.recommendedMiB);
    baseline.push(floor);
    say(
      `trial ${i + 1}/${runs}  removal → QEMU dead ${trial.deadMs.toFixed(0)} ms, reaped ${trial.reapedMs.toFixed(0)} ms, session gone ${trial.sessionMs.toFixed(0)} ms   |   baseline kill → dead ${floor.deadMs.toFixed(0)} ms, reaped ${floor.reapedMs.toFixed(0)} ms`,
    );
  }
  const result = {
    runs,
    pollIntervalMs: DEFAULT_PRESENCE.intervalMs,
    removal: {
      deadMedianMs: median(removal.map((t) => t.deadMs)),
      reapedMedianMs: median(removal.map((t) => t.reapedMs)),
      reapedMaxMs: Math.max(...removal.map((t) => t.reapedMs)),
      sessionMedianMs: median(removal.map((t) => t.sessionMs)),
    },
    baseline: {
      deadMedianMs: median(baseline.map((t) => t.deadMs)),
      reapedMedianMs: median(baseline.map((t) => t.reapedMs)),
    },
    ratio: 0,
    ratioToPollInterval: 0,
    targetMs: TARGET_MS,
    targetMet: false,
    trials: { removal, baseline },
  };
  result.ratio = result.removal.reapedMedianMs / result.baseline.reapedMedianMs;
  result.ratioToPollInterval = result.removal.reapedMedianMs / result.pollIntervalMs;
  result.targetMet = result.removal.reapedMedianMs <= TARGET_MS;
  if (json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    const ms = (value: number) => `${value.toFixed(0)} ms`;
    process.stdout.write(
      [
        `unplug: ${runs} removals during heavy guest writes (bindfs killed), against SIGKILL of a bare booting QEMU, alternating`,
        `  removal → QEMU dead       ${ms(result.removal.deadMedianMs)} median`,
        `  removal → QEMU reaped     ${ms(result.removal.reapedMedianMs)} median, ${ms(result.removal.reapedMaxMs)} worst   (target ≤ ${TARGET_MS} ms: ${result.targetMet ? 'met' : 'not met'})`,
        `  removal → session gone    ${ms(result.removal.sessionMedianMs)} median`,
        `  baseline kill → reaped    ${ms(result.baseline.reapedMedianMs)} median (dead ${ms(result.baseline.deadMedianMs)})`,
        `  ratio removal/baseline    ${result.ratio.toFixed(1)}   (presence poll interval ${result.pollIntervalMs} ms: removal = ${result.ratioToPollInterval.toFixed(2)} intervals)`,
        '',
      ].join('\n'),
    );
  }
} finally {
  await run(['stop', '--force', '--stick', mount]).catch(() => undefined);
  bindfs?.kill('SIGKILL');
  spawnSync('fusermount', ['-u', '-z', mount]);
  await rm(parent, { recursive: true, force: true });
}
