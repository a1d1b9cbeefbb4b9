// bench/adapt: `launcher image adapt --for pocketvm` and a boot of the result
// on the stick's QEMU, against `virt-v2v -i disk RAW -o local` and a boot of
// what it wrote, on the same image in the same run (issue 22's benchmark):
// the time from the raw image to its marker on the serial port.
//
//   ours      the image imported (untimed), then timed: `image adapt --for
//             pocketvm` (the helper appliance started, cold, as a person's
//             first adapt would) and
//             bootCheck of the new image until the marker (virtio disk).
//   baseline  timed: virt-v2v -i disk -o local -of qcow2 (libguestfs's
//             appliance on the payload's Debian kernel, bench/libguestfs-kernel.ts;
//             its one-time supermin build untimed), then the same bootCheck
//             of its qcow2 until the marker.
//
// The image: the adapt test's Debian without virtio drivers in its initramfs
// (test/images/adapt-image.ts, cached under .cache/adapt-image/). Prints
// medians and the ratio; never fails on a time. Where virt-v2v cannot run, its
// baseline is reported missing.
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { ADAPT_MARKER, adaptImage } from '../test/images/adapt-image.ts';
import { bootCheck } from '../src/images/boot-check.ts';
import { prepareLibguestfs } from './libguestfs-kernel.ts';
import { benchOptions, median } from './bench-options.ts';

const { runs, json, say } = benchOptions(1);
const root = new URL('..', import.meta.url).pathname;
const launcher = join(root, 'launcher');
const NO_ROOT = ['Gave up waiting for root file system device', 'Dropping to a shell'];

async function timed(command: string, args: string[], env: Record<string, string> = {}): Promise<number> {
  const started = performance.now();
  const result = await execa(command, args, { reject: false, env: { NO_COLOR: '1', ...env }, timeout: 3_600_000, stdout: 'ignore' });
  if (result.exitCode !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.exitCode}): ${String(result.stderr).trim().split('\n').at(-1)}`);
  return (performance.now() - started) / 1000;
}

async function bootToMarker(stick: string, disk: string, format: 'qcow2' | 'raw', scratch: string): Promise<number> {
  const overlay = `${scratch}.qcow2`;
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', format, '-b', disk, overlay]);
  try {
    return (await bootCheck(stick, overlay, 'bios', scratch, 1_800_000, { until: ADAPT_MARKER, failOn: NO_ROOT })).ms / 1000;
  } finally {
    rmSync(overlay, { force: true });
  }
}

const base = mkdtempSync(join(tmpdir(), 'pocketvm-bench-adapt-'));
const stick = join(base, 'stick');
try {
  await execa(launcher, ['init-stick', stick]);
  await execa('node', ['build.js', 'payload', '--guest', 'appliance'], { cwd: root });
  const raw = adaptImage(say).raw;
  await execa(launcher, ['image', 'import', raw, '--name', 'sata-only', '--stick', stick]);
  const close = () => execa(launcher, ['files', 'close', '--all', '--stick', stick], { reject: false });
  const ours: { adapt: number; boot: number }[] = [];
  const theirs: { convert: number; boot: number }[] = [];
  const missing: string[] = [];
  let lg: Awaited<ReturnType<typeof prepareLibguestfs>> | undefined;
  try {
    say('libguestfs: building its appliance once (untimed)');
    lg = await prepareLibguestfs(root, join(base, 'libguestfs'));
  } catch (error) {
    missing.push((error as Error).message.slice(0, 200));
  }
  for (let run = 1; run <= runs; run++) {
    say(`run ${run}/${runs}: image adapt --for pocketvm (appliance cold)`);
    await close();
    const name = `adapted-${run}`;
    const adapt = await timed(launcher, ['image', 'adapt', 'sata-only', '--for', 'pocketvm', '--name', name, '--stick', stick]);
    const stored = (JSON.parse((await execa(launcher, ['image', 'show', name, '--json', '--stick', stick])).stdout) as { file: string }).file;
    say(`run ${run}/${runs}: boot of the adapted image to its marker`);
    const boot = await bootToMarker(stick, join(stick, 'images', 'store', stored), 'qcow2', join(base, `ours-${run}`));
    ours.push({ adapt, boot });
    await execa(launcher, ['image', 'rm', name, '--stick', stick], { reject: false });
    if (!lg) continue;
    say(`run ${run}/${runs}: virt-v2v -i disk -o local`);
    const out = join(base, `v2v-${run}`);
    mkdirSync(out, { recursive: true });
    try {
      const [command, ...args] = lg.wrap(['virt-v2v', '-i', 'disk', raw, '-o', 'local', '-os', out, '-of', 'qcow2', '-on', 'bench']);
      const convert = await timed(command!, args, lg.env);
      const disk = readdirSync(out).find((f) => f.startsWith('bench-sd'));
      if (!disk) throw new Error(`virt-v2v wrote no disk in ${out}: ${readdirSync(out).join(', ')}`);
      say(`run ${run}/${runs}: boot of virt-v2v's output to its marker`);
      theirs.push({ convert, boot: await bootToMarker(stick, join(out, disk), 'qcow2', join(base, `v2v-${run}-boot`)) });
    } catch (error) {
      missing.push((error as Error).message.slice(0, 300));
    }
    rmSync(out, { recursive: true, force: true });
  }
  await close();
  const med = (values: number[]) => (values.length ? median(values) : null);
  const ourAdapt = med(ours.map((r) => r.adapt))!;
  const ourBoot = med(ours.map((r) => r.boot))!;
  const ourTotal = med(ours.map((r) => r.adapt + r.boot))!;
  const theirTotal = med(theirs.map((r) => r.convert + r.boot));
  const figures = {
    runs,
    loadavg: loadavg()[0] ?? 0,
    ours: { adaptSeconds: ourAdapt, bootSeconds: ourBoot, totalSeconds: ourTotal },
    virtV2v:
      theirTotal === null ? null : { convertSeconds: med(theirs.map((r) => r.convert)), bootSeconds: med(theirs.map((r) => r.boot)), totalSeconds: theirTotal },
    ratio: theirTotal === null ? null : ourTotal / theirTotal,
    libguestfsKernel: lg?.kernel ?? null,
    baselineMissing: [...new Set(missing)],
  };
  if (json) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
  else
    process.stdout.write(
      [
        `image adapt --for pocketvm + boot to marker: ${ourTotal.toFixed(1)} s (adapt ${ourAdapt.toFixed(1)} s with the appliance's cold start, boot ${ourBoot.toFixed(1)} s)`,
        figures.virtV2v
          ? `baseline virt-v2v -i disk -o local + boot: ${theirTotal!.toFixed(1)} s (convert ${figures.virtV2v.convertSeconds!.toFixed(1)} s, boot ${figures.virtV2v.bootSeconds!.toFixed(1)} s): ${figures.ratio!.toFixed(2)} x`
          : 'baseline virt-v2v: not run',
        ...figures.baselineMissing.map((why) => `  virt-v2v missing: ${why}`),
        `runs ${runs}, load ${figures.loadavg.toFixed(1)}`,
        '',
      ].join('\n'),
    );
} finally {
  await execa(launcher, ['files', 'close', '--all', '--stick', stick], { reject: false });
  rmSync(base, { recursive: true, force: true });
}
