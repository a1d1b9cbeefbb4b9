// bench/images: `launcher image inspect` against `virt-inspector` on the same
// raw disk, in the same run (issue 21's benchmark; target <= 0.33 x):
//
//   cold   nothing running: `image inspect RAW` boots the helper appliance,
//          plugs the disk read-only, reads every file system, unplugs;
//          `virt-inspector -a RAW` boots libguestfs's appliance and does the
//          same (LIBGUESTFS_BACKEND=direct).
//   warm   the appliance already running (as after an import or for the
//          second image of a catalog): `image inspect RAW` alone, against
//          the same virt-inspector figure (it has no running appliance to reuse).
//
// The disk is the tests' UEFI corpus system (test/images/corpus.ts: GPT,
// ESP, ext4 root, xfs /srv; mmdebstrap, cached under .cache/images-corpus/).
// Prints medians and ratios; never fails on a time. Where virt-inspector
// cannot run, its baseline is reported missing and the figures stand alone.
//
// Then `launcher image capture --smaller` of the BIOS corpus system (MBR,
// ext4; the appliance running, the boot check included) against
// `virt-v2v -i disk RAW -o local -of qcow2` and `qemu-img convert -O qcow2`
// of the same disk: each one's time and the size its result takes on disk.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildImageCorpus } from '../test/images/corpus.ts';
import { benchOptions, median } from './bench-options.ts';

const { runs, json, say } = benchOptions(1);
const root = new URL('..', import.meta.url).pathname;
const launcher = join(root, 'launcher');

async function timed(command: string, args: string[], env: Record<string, string> = {}): Promise<number> {
  const started = performance.now();
  const result = await execa(command, args, { reject: false, env: { NO_COLOR: '1', ...env }, timeout: 3_600_000, stdout: 'ignore' });
  if (result.exitCode !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.exitCode}): ${String(result.stderr).trim().split('\n').at(-1)}`);
  return (performance.now() - started) / 1000;
}

const base = mkdtempSync(join(tmpdir(), 'pocketvm-bench-images-'));
const stick = join(base, 'stick');
try {
  await execa(launcher, ['init-stick', stick]);
  await execa('node', ['build.js', 'payload', '--guest', 'appliance'], { cwd: root });
  const disk = buildImageCorpus(say).find((s) => s.label === 'uefi-gpt')!.raw;
  const close = () => execa(launcher, ['files', 'close', '--all', '--stick', stick], { reject: false });
  const inspect = () => timed(launcher, ['image', 'inspect', disk, '--json', '--stick', stick]);
  const cold: number[] = [];
  const warm: number[] = [];
  const virt: number[] = [];
  const missing: string[] = [];
  for (let run = 1; run <= runs; run++) {
    say(`run ${run}/${runs}: image inspect, cold`);
    await close();
    cold.push(await inspect());
    say(`run ${run}/${runs}: image inspect, appliance running`);
    warm.push(await inspect());
    await close();
    say(`run ${run}/${runs}: virt-inspector`);
    try {
      virt.push(await timed('virt-inspector', ['-a', disk], { LIBGUESTFS_BACKEND: 'direct' }));
    } catch (error) {
      missing.push((error as Error).message.slice(0, 200));
    }
  }
  // Capture against virt-v2v and qemu-img convert, the BIOS system, once each per run.
  const biosDisk = buildImageCorpus(say).find((s) => s.label === 'bios-mbr')!.raw;
  const allocated = (file: string) => statSync(file).blocks * 512;
  const captureRuns: { seconds: number; bytes: number }[] = [];
  const v2vRuns: { seconds: number; bytes: number }[] = [];
  const convertRuns: { seconds: number; bytes: number }[] = [];
  const v2vMissing: string[] = [];
  for (let run = 1; run <= runs; run++) {
    say(`run ${run}/${runs}: image capture --smaller (appliance running)`);
    await execa(launcher, ['image', 'inspect', biosDisk, '--stick', stick], { reject: false });
    const name = `bench-${run}`;
    const seconds = await timed(launcher, ['image', 'capture', biosDisk, '--smaller', '--name', name, '--stick', stick]);
    const stored = readdirSync(join(stick, 'images', 'store')).map((f) => join(stick, 'images', 'store', f));
    captureRuns.push({ seconds, bytes: Math.max(...stored.map(allocated)) });
    await execa(launcher, ['image', 'rm', name, '--stick', stick], { reject: false });
    say(`run ${run}/${runs}: qemu-img convert -O qcow2`);
    const converted = join(base, 'converted.qcow2');
    convertRuns.push({ seconds: await timed('qemu-img', ['convert', '-O', 'qcow2', biosDisk, converted]), bytes: allocated(converted) });
    rmSync(converted, { force: true });
    say(`run ${run}/${runs}: virt-v2v -i disk -o local`);
    const out = join(base, 'v2v');
    mkdirSync(out, { recursive: true });
    try {
      const v2vSeconds = await timed('virt-v2v', ['-i', 'disk', biosDisk, '-o', 'local', '-os', out, '-of', 'qcow2', '-on', 'bench'], {
        LIBGUESTFS_BACKEND: 'direct',
      });
      v2vRuns.push({
        seconds: v2vSeconds,
        bytes: readdirSync(out)
          .filter((f) => f.startsWith('bench-sd'))
          .reduce((sum, f) => sum + allocated(join(out, f)), 0),
      });
    } catch (error) {
      v2vMissing.push((error as Error).message.slice(0, 200));
    }
    rmSync(out, { recursive: true, force: true });
  }
  const med = (list: { seconds: number; bytes: number }[]) =>
    list.length > 0 ? { seconds: median(list.map((r) => r.seconds)), bytes: median(list.map((r) => r.bytes)) } : null;
  const capture = med(captureRuns)!;
  const v2v = med(v2vRuns);
  const convert = med(convertRuns)!;
  const baseline = virt.length > 0 ? median(virt) : null;
  const figures = {
    disk: 'uefi-gpt (GPT: ESP, ext4 /, xfs /srv)',
    virtInspectorSeconds: baseline,
    cold: { seconds: median(cold), ratio: baseline ? median(cold) / baseline : null },
    warm: { seconds: median(warm), ratio: baseline ? median(warm) / baseline : null },
    target: '<= 0.33',
    baselineMissing: [...new Set(missing)],
    capture: {
      disk: 'bios-mbr (MBR, ext4 /)',
      capture,
      virtV2v: v2v,
      qemuImgConvert: convert,
      timeRatioToVirtV2v: v2v ? capture.seconds / v2v.seconds : null,
      timeRatioToConvert: capture.seconds / convert.seconds,
      sizeRatioToVirtV2v: v2v ? capture.bytes / v2v.bytes : null,
      sizeRatioToConvert: capture.bytes / convert.bytes,
      baselineMissing: [...new Set(v2vMissing)],
    },
    runs,
  };
  if (json) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
  else
    process.stdout.write(
      [
        `baseline   virt-inspector -a ${figures.disk}: ${baseline?.toFixed(1) ?? 'not run'} s`,
        `cold       image inspect, appliance booted for it: ${figures.cold.seconds.toFixed(1)} s: ${figures.cold.ratio?.toFixed(2) ?? '-'} x (target <= 0.33)`,
        `warm       image inspect, appliance running: ${figures.warm.seconds.toFixed(1)} s: ${figures.warm.ratio?.toFixed(2) ?? '-'} x (target <= 0.33)`,
        ...figures.baselineMissing.map((why) => `           baseline missing: ${why}`),
        `capture    image capture --smaller ${figures.capture.disk}: ${capture.seconds.toFixed(1)} s, ${(capture.bytes / (1 << 20)).toFixed(1)} MiB on disk`,
        `baseline   virt-v2v -i disk -o local: ${v2v ? `${v2v.seconds.toFixed(1)} s, ${(v2v.bytes / (1 << 20)).toFixed(1)} MiB: time ${figures.capture.timeRatioToVirtV2v!.toFixed(2)} x, size ${figures.capture.sizeRatioToVirtV2v!.toFixed(2)} x` : 'not run'}`,
        `baseline   qemu-img convert -O qcow2: ${convert.seconds.toFixed(1)} s, ${(convert.bytes / (1 << 20)).toFixed(1)} MiB: time ${figures.capture.timeRatioToConvert.toFixed(2)} x, size ${figures.capture.sizeRatioToConvert.toFixed(2)} x`,
        ...figures.capture.baselineMissing.map((why) => `           virt-v2v missing: ${why}`),
        `           median of ${runs} run(s)`,
        '',
      ].join('\n'),
    );
} finally {
  await execa(launcher, ['files', 'close', '--all', '--stick', stick], { reject: false });
  rmSync(base, { recursive: true, force: true });
}
