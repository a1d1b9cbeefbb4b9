// bench/suspend: suspending a 512 MiB guest to the stick and resuming it,
// against plain sequential I/O of 512 MiB in the same stick folder, same run.
//
//   baseline   write 512 MiB (1 MiB writes, then fsync) to a file in the
//              stick folder; drop that file from the page cache (GNU dd
//              iflag=nocache count=0, i.e. posix_fadvise DONTNEED on the file,
//              not the whole machine's cache); read it back sequentially
//   suspend    `launcher eject --suspend`: the session's own figure (QMP stop →
//              state sealed, fsync'd and renamed → QEMU gone), and the
//              command's wall time
//   resume     the saved state is dropped from the page cache the same way,
//              then `launcher run --detach`: QEMU start → guest answering
//              (reading, verifying and loading the state, hot-plugging the
//              disk, clock correction), and the command's wall time (adds
//              process start, argon2id login, payload and host checks)
//
// One boot (TCG, 512 MiB via the registry's Machine\MemoryMiB). Each round
// measures a suspend/resume of the guest as booted (most of its memory never
// touched: zero pages cost nothing) and one with its free memory filled
// (a tmpfs filled with a non-zero pattern: every page then travels, and
// costs the same to seal as random data would). Ratios are against the
// baseline of the same round; medians over --runs rounds. Never fails on a
// time. --dir DIR puts the stick in DIR (a real stick's mount point) instead
// of a temporary folder.
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';
import { benchOptions, median } from './bench-options.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const launcherPath = join(root, 'launcher');
const { runs, json, say } = benchOptions(2);
const dirAt = process.argv.indexOf('--dir');
const parentDir = dirAt >= 0 ? process.argv[dirAt + 1]! : tmpdir();
const MEMORY_MIB = 512;
const IO_MIB = 512;
const USER = 'bench';
const PASSPHRASE = 'bench suspend passphrase';

async function launcher(args: string[], input?: string): Promise<{ stdout: string; stderr: string; ms: number }> {
  const started = performance.now();
  const result = await execa(launcherPath, args, {
    reject: false,
    env: { NO_COLOR: '1' },
    timeout: 900_000,
    ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
  });
  const ms = performance.now() - started;
  if (result.exitCode !== 0) throw new Error(`launcher ${args.join(' ')} failed (${result.exitCode}): ${String(result.stderr)}`);
  return { stdout: String(result.stdout), stderr: String(result.stderr), ms };
}

/** Drops one file from the page cache (GNU dd: posix_fadvise DONTNEED); false where that is not possible. */
async function dropFromCache(file: string): Promise<boolean> {
  const result = await execa('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none'], { reject: false });
  return result.exitCode === 0;
}

async function writeAndRead(file: string): Promise<{ writeMs: number; readMs: number; cold: boolean }> {
  const block = Buffer.alloc(1 << 20, 0x5a);
  let started = performance.now();
  const out = await open(file, 'w');
  for (let i = 0; i < IO_MIB; i++) await out.write(block, 0, block.length);
  await out.sync();
  await out.close();
  const writeMs = performance.now() - started;
  const cold = await dropFromCache(file);
  started = performance.now();
  const input = await open(file, 'r');
  const into = Buffer.alloc(1 << 20);
  while ((await input.read(into, 0, into.length)).bytesRead > 0);
  await input.close();
  const readMs = performance.now() - started;
  await rm(file, { force: true });
  return { writeMs, readMs, cold };
}

interface Cycle {
  label: string;
  stateMiB: number;
  suspendMs: number;
  suspendWallMs: number;
  resumeMs: number;
  resumeWallMs: number;
  loadMs: number;
  writeMs: number;
  readMs: number;
}

const parent = await mkdtemp(join(parentDir, 'pocketvm-bench-suspend-'));
const stick = join(parent, 'stick');
const login = ['--stick', stick, '--user', USER, '--passphrase-stdin'];
const cycles: Cycle[] = [];
let coldReads = true;
try {
  say(`stick folder: ${stick}`);
  await launcher(['init-stick', stick]);
  await launcher(['user', 'add', USER, '--passphrase-stdin', '--stick', stick], `${PASSPHRASE}\n`);
  await launcher(['reg', 'set', '--stick', stick, '--user', USER, 'Machine', 'MemoryMiB', String(MEMORY_MIB), '--type', 'int32']);
  say(`booting the guest with ${MEMORY_MIB} MiB under TCG`);
  const booted = await launcher(['run', '--detach', ...login, '--accel', 'tcg', '--json'], `${PASSPHRASE}\n`);
  const memoryMiB = (JSON.parse(booted.stdout) as { memoryMiB: number }).memoryMiB;
  if (memoryMiB !== MEMORY_MIB) say(`note: the guest got ${memoryMiB} MiB (the host could not spare ${MEMORY_MIB})`);

  const cycle = async (label: string) => {
    say(`${label}: baseline write/read ${IO_MIB} MiB in the stick folder`);
    const io = await writeAndRead(join(stick, 'bench-io.bin'));
    coldReads &&= io.cold;
    say(`${label}: suspending`);
    const ejected = await launcher(['eject', '--suspend', '--stick', stick, '--json']);
    const suspend = (JSON.parse(ejected.stdout) as { suspend: { file: string; bytes: number; totalMs: number } }).suspend;
    coldReads &&= await dropFromCache(suspend.file);
    say(`${label}: resuming`);
    const resumed = await launcher(['run', '--detach', ...login, '--json'], `${PASSPHRASE}\n`);
    const status = JSON.parse(resumed.stdout) as { bootMs: number; resumed?: { loadMs: number } };
    if (!status.resumed) throw new Error('the guest booted instead of resuming');
    cycles.push({
      label,
      stateMiB: suspend.bytes / 1048576,
      suspendMs: suspend.totalMs,
      suspendWallMs: ejected.ms,
      resumeMs: status.bootMs,
      resumeWallMs: resumed.ms,
      loadMs: status.resumed.loadMs,
      writeMs: io.writeMs,
      readMs: io.readMs,
    });
  };

  for (let run = 0; run < runs; run++) await cycle('as booted');
  say("filling the guest's free memory (tmpfs, non-zero pattern)");
  await launcher([
    'exec',
    '--root',
    '--stick',
    stick,
    '--timeout',
    '600',
    '--',
    'sh',
    '-c',
    'avail=$(awk \'/MemAvailable/{print int($2/1024)}\' /proc/meminfo); n=$((avail-48)); mkdir -p /run/fill && mount -t tmpfs -o size=$((n+8))m fill /run/fill && tr "\\000" "Z" </dev/zero | dd of=/run/fill/pattern bs=1M count=$n iflag=fullblock 2>/dev/null; echo $n',
  ]);
  for (let run = 0; run < runs; run++) await cycle('memory filled');
  await launcher(['eject', '--stick', stick]);
} finally {
  await launcher(['stop', '--force', '--stick', stick]).catch(() => {});
  await rm(parent, { recursive: true, force: true });
}

const summary = ['as booted', 'memory filled'].map((label) => {
  const of = cycles.filter((c) => c.label === label);
  const m = (pick: (c: Cycle) => number) => median(of.map(pick));
  return {
    label,
    runs: of.length,
    stateMiB: Math.round(m((c) => c.stateMiB)),
    suspendMs: Math.round(m((c) => c.suspendMs)),
    suspendWallMs: Math.round(m((c) => c.suspendWallMs)),
    resumeMs: Math.round(m((c) => c.resumeMs)),
    resumeWallMs: Math.round(m((c) => c.resumeWallMs)),
    loadMs: Math.round(m((c) => c.loadMs)),
    writeMs: Math.round(m((c) => c.writeMs)),
    readMs: Math.round(m((c) => c.readMs)),
    suspendRatio: +m((c) => c.suspendMs / c.writeMs).toFixed(2),
    resumeRatio: +m((c) => c.resumeMs / c.readMs).toFixed(2),
  };
});

if (json) {
  process.stdout.write(`${JSON.stringify({ memoryMiB: MEMORY_MIB, ioMiB: IO_MIB, coldReads, dir: parentDir, cycles, summary }, null, 2)}\n`);
} else {
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const lines = [
    `bench suspend: a ${MEMORY_MIB} MiB guest (TCG) against ${IO_MIB} MiB of sequential I/O in the same folder (${parentDir}); reads ${coldReads ? 'after dropping the file from the page cache' : 'with a warm cache (could not drop it)'}; target ≤ 2× each`,
  ];
  for (const r of summary) {
    lines.push(
      '',
      `  ${r.label} (median of ${r.runs}; state file ${r.stateMiB} MiB)`,
      `    suspend   ${s(r.suspendMs)}  stop → sealed, fsync'd → QEMU gone   (eject --suspend wall ${s(r.suspendWallMs)})`,
      `    write     ${s(r.writeMs)}  ${IO_MIB} MiB + fsync                    ratio ${r.suspendRatio}`,
      `    resume    ${s(r.resumeMs)}  QEMU start → guest answering (load ${s(r.loadMs)})   (run --detach wall ${s(r.resumeWallMs)})`,
      `    read      ${s(r.readMs)}  ${IO_MIB} MiB                             ratio ${r.resumeRatio}`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
