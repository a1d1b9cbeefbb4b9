// bench/boot: launcher boot-to-ready against bare QEMU booting the same kernel
// and initramfs to the same ready marker, alternating, in the same run.
//
//   launcher: wall time of `launcher run --detach` (process start → returns
//             with the guest agent answering; includes login and the
//             encrypted home), then `launcher stop` (untimed); and the
//             launcher's own figure for QEMU start → agent ready
//   baseline: wall time from spawning qemu-system-x86_64 (TCG, same memory,
//             CPUs and devices) to the line POCKETVM_READY on its serial port
//             (the payload's init prints it once qemu-ga runs)
//   cold start: `launcher --version` against `node -e 0` with the same Node
//
// Prints medians and ratios; never fails on a time.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { openGuestPayload } from '../src/payload/guest-payload.ts';
import { READY_MARKER } from '../src/vmm/console-tap.ts';
import { bootToMarker } from './bare-qemu.ts';
import { benchOptions, median } from './bench-options.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const { runs, json, say } = benchOptions(5);
const launcher = join(root, 'launcher');

/** End to end (process start → returns ready) and the VMM path alone (QEMU start → agent ready). */
async function launcherBoot(stick: string): Promise<{ totalMs: number; bootMs: number }> {
  const started = performance.now();
  // Every launch logs in (argon2id) and opens the user's encrypted disk: that is part of the cost.
  const result = await execa(launcher, ['run', '--detach', '--stick', stick, '--json', '--user', 'bench', '--passphrase-stdin'], {
    reject: false,
    input: 'bench passphrase\n',
  });
  const totalMs = performance.now() - started;
  if (result.exitCode !== 0) throw new Error(`launcher run failed: ${String(result.stdout)} ${String(result.stderr)}`);
  const { bootMs } = JSON.parse(String(result.stdout)) as { bootMs: number };
  await execa(launcher, ['stop', '--stick', stick], { reject: false });
  return { totalMs, bootMs };
}

async function bareQemuBoot(kernel: string, initrd: string, cmdline: string, memoryMiB: number, cpus: number): Promise<number> {
  return (await bootToMarker({ kernel, initrd, cmdline, memoryMiB, cpus, cpuMax: true })).ms;
}

async function timeCommand(command: string, args: string[]): Promise<number> {
  const started = performance.now();
  const result = await execa(command, args, { reject: false });
  if (result.exitCode !== 0) throw new Error(`${command} ${args.join(' ')} failed`);
  return performance.now() - started;
}

const parent = await mkdtemp(join(tmpdir(), 'pocketvm-bench-'));
try {
  const stick = join(parent, 'stick');
  say(`bench/boot: preparing a stick in ${stick}`);
  const made = await execa(launcher, ['init-stick', stick], { reject: false });
  if (made.exitCode !== 0) throw new Error(`init-stick failed: ${String(made.stderr)}`);
  const user = await execa(launcher, ['user', 'add', 'bench', '--passphrase-stdin', '--stick', stick], { reject: false, input: 'bench passphrase\n' });
  if (user.exitCode !== 0) throw new Error(`user add failed: ${String(user.stderr)}`);
  const payload = await openGuestPayload(join(stick, 'payload'), 'default');
  const { memory, cpus } = payload.manifest;

  // Warm-up (not counted): page cache, and the launcher's accelerator verdict
  // for this host, as on any launch after the first.
  say('warm-up: one launcher boot, one bare boot');
  await launcherBoot(stick);
  await bareQemuBoot(payload.kernel, payload.initrd, payload.manifest.cmdline, memory.recommendedMiB, cpus.recommended);

  const launcherMs: number[] = [];
  const vmmMs: number[] = [];
  const bareMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const launched = await launcherBoot(stick);
    launcherMs.push(launched.totalMs);
    vmmMs.push(launched.bootMs);
    bareMs.push(await bareQemuBoot(payload.kernel, payload.initrd, payload.manifest.cmdline, memory.recommendedMiB, cpus.recommended));
    say(
      `run ${i + 1}/${runs}: launcher ${(launched.totalMs / 1000).toFixed(2)} s (QEMU start to ready ${(launched.bootMs / 1000).toFixed(2)} s), bare QEMU ${(bareMs.at(-1)! / 1000).toFixed(2)} s`,
    );
  }

  const versionMs: number[] = [];
  const nodeMs: number[] = [];
  for (let i = 0; i < Math.max(runs, 5); i++) {
    versionMs.push(await timeCommand(launcher, ['--version']));
    nodeMs.push(await timeCommand(process.execPath, ['-e', '0']));
  }

  const ratio = (values: number[]) => Number((median(values) / median(bareMs)).toFixed(3));
  const result = {
    runs,
    boot: {
      bareQemuMedianMs: Math.round(median(bareMs)),
      // Everything a person waits for: process start, stick and payload checks, login (argon2id), the encrypted home, boot.
      launcherMedianMs: Math.round(median(launcherMs)),
      ratio: ratio(launcherMs),
      // The VMM path the issue compares: QEMU start (paused, QMP, attach, cont) to the agent answering.
      launcherVmmMedianMs: Math.round(median(vmmMs)),
      vmmRatio: ratio(vmmMs),
      target: 1.1,
    },
    coldStart: {
      launcherVersionMedianMs: Math.round(median(versionMs)),
      nodeBaselineMedianMs: Math.round(median(nodeMs)),
      ratio: Number((median(versionMs) / median(nodeMs)).toFixed(2)),
    },
    samples: {
      launcherMs: launcherMs.map(Math.round),
      launcherVmmMs: vmmMs.map(Math.round),
      bareQemuMs: bareMs.map(Math.round),
      versionMs: versionMs.map(Math.round),
      nodeMs: nodeMs.map(Math.round),
    },
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    process.stdout.write(
      [
        `boot to ready, median of ${runs}; bare QEMU ${(result.boot.bareQemuMedianMs / 1000).toFixed(2)} s (spawn to ${READY_MARKER})`,
        `  launcher, QEMU start to agent ready  ${(result.boot.launcherVmmMedianMs / 1000).toFixed(2)} s   ratio ${result.boot.vmmRatio.toFixed(3)} (target <= 1.10)`,
        `  launcher run --detach, end to end    ${(result.boot.launcherMedianMs / 1000).toFixed(2)} s   ratio ${result.boot.ratio.toFixed(3)} (adds process start, checks, login, encrypted home)`,
        `cold start (median):  launcher --version ${result.coldStart.launcherVersionMedianMs} ms   node -e 0 ${result.coldStart.nodeBaselineMedianMs} ms   ratio ${result.coldStart.ratio.toFixed(2)}`,
      ].join('\n') + '\n',
    );
  }
} finally {
  await rm(parent, { recursive: true, force: true });
}
