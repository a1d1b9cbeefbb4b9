// bench/cold-start: the self-contained executable against running from
// source (`./launcher` in this checkout), alternating, in the same run:
//
//   --version                 process start → exit
//   status on an idle stick   opens the stick, reads the lock, exits 8
//   probe                     the whole host probe (drivelist, usb, …) and the sizing
//
// Then the size of a built stick by component (executables, QEMU bundle,
// payload, other), from its manifest. Prints medians and ratios; never fails
// on a time.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { componentOf } from '../src/stick/stick-manifest.ts';
import { benchOptions, median } from './bench-options.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const { runs, json, say } = benchOptions(15, 10);

function timed(command: string, args: string[], expectCode: number): number {
  const started = performance.now();
  const result = spawnSync(command, args, { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  const ms = performance.now() - started;
  if (result.status !== expectCode) throw new Error(`${command} ${args.join(' ')} exited ${result.status}, not ${expectCode}: ${result.stderr}`);
  return ms;
}

const parent = await mkdtemp(join(tmpdir(), 'pocketvm-bench-'));
try {
  const stick = join(parent, 'stick');
  say(`bench/cold-start: building a stick in ${stick} (all platforms; parts cached in .cache/)`);
  const built = spawnSync(process.execPath, [join(root, 'build.js'), 'stick', stick], { encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`node build.js stick failed: ${built.stderr}`);
  const exe = join(stick, '.pocketvm', 'bin', 'linux-x64', 'launcher');
  const source = join(root, 'launcher');

  const cases = [
    { name: '--version', exe: [exe, ['--version'], 0], source: [source, ['--version'], 0] },
    { name: 'status (idle stick)', exe: [exe, ['status'], 8], source: [source, ['status', '--stick', stick], 8] },
    { name: 'probe', exe: [exe, ['probe', '--json'], 0], source: [source, ['probe', '--json', '--stick', stick], 0] },
  ] as const;
  const results = [];
  for (const c of cases) {
    timed(...(c.exe as unknown as [string, string[], number]));
    timed(...(c.source as unknown as [string, string[], number]));
    const exeMs: number[] = [];
    const sourceMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      exeMs.push(timed(...(c.exe as unknown as [string, string[], number])));
      sourceMs.push(timed(...(c.source as unknown as [string, string[], number])));
    }
    const result = {
      command: c.name,
      runs,
      executableMedianMs: Number(median(exeMs).toFixed(1)),
      sourceMedianMs: Number(median(sourceMs).toFixed(1)),
      ratio: Number((median(exeMs) / median(sourceMs)).toFixed(2)),
    };
    results.push(result);
    say(
      `${c.name.padEnd(20)} executable ${result.executableMedianMs.toFixed(1).padStart(6)} ms   from source ${result.sourceMedianMs.toFixed(1).padStart(6)} ms   ratio ${result.ratio.toFixed(2)}   (medians of ${runs})`,
    );
  }

  const manifest = JSON.parse(await readFile(join(stick, '.pocketvm', 'manifest.json'), 'utf8')) as { files: Record<string, { bytes: number }> };
  const sizes: Record<string, number> = { executables: 0, qemu: 0, payload: 0, other: 0 };
  for (const [path, entry] of Object.entries(manifest.files)) {
    // Executables with their native addons, and launcher.exe (a copy of the win-x64 one).
    const component = componentOf(path);
    const key = path.startsWith('.pocketvm/bin/') || path === 'launcher.exe' ? 'executables' : component === 'launcher' ? 'other' : component;
    sizes[key] = (sizes[key] ?? 0) + entry.bytes;
  }
  const total = Object.values(sizes).reduce((a, b) => a + b, 0);
  const MiB = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
  say(
    `stick size: executables + addons ${MiB(sizes['executables']!)} (linux-x64, win-x64, darwin-x64, launcher.exe), QEMU bundle ${MiB(sizes['qemu']!)}, payload ${MiB(sizes['payload']!)}, other ${MiB(sizes['other']!)}, total ${MiB(total)}`,
  );
  if (json) process.stdout.write(`${JSON.stringify({ coldStart: results, stickBytes: { ...sizes, total } }, null, 2)}\n`);
} finally {
  await rm(parent, { recursive: true, force: true });
}
