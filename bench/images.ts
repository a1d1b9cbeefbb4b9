// bench/images: `launcher image inspect` against `virt-inspector` on the same
// raw disk, in the same run (issue 21's benchmark; target <= 0.33 x):
//
//   cold   no appliance running, its saved state on the stick (as after the
//          stick's first use): `image inspect RAW` resumes the helper
//          appliance from that state (docs/files.md, "Starting from a saved
//          state"), plugs the disk read-only, reads every file system;
//          `virt-inspector -a RAW` boots libguestfs's appliance and does the
//          same. Also shown: the same cold inspect with no saved state (the
//          appliance boots, then saves one), as a stick's very first one.
//   warm   the appliance already running (as after an import or for the
//          second image of a catalog): `image inspect RAW` alone, against
//          the same virt-inspector figure (it has no running appliance to reuse).
//
// The disk is the tests' UEFI corpus system (test/images/corpus.ts: GPT,
// ESP, ext4 root, xfs /srv; mmdebstrap, cached under .cache/images-corpus/).
//
// Then `launcher image capture --smaller` (the appliance running, the boot
// check included) against `virt-v2v -i disk RAW -o local -of qcow2` and
// `qemu-img convert -O qcow2` of the same disk: each one's time and the size
// its result takes on disk. The disk is bench/packaged-kernel-disk.ts's
// (MBR, ext4), not the corpus's: virt-v2v refuses a system whose kernel is
// no installed package ("no installed kernel packages were found").
//
// libguestfs (virt-inspector, virt-v2v) runs with LIBGUESTFS_BACKEND=direct
// and the payload build's Debian kernel (bench/libguestfs-kernel.ts: this
// container has none for supermin); its appliance is built once, untimed.
// Each figure is printed with the 1-minute load average at its start and
// end. Prints medians and ratios; never fails on a time. A baseline that
// cannot run is reported missing and the figures stand alone.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildImageCorpus } from '../test/images/corpus.ts';
import { benchOptions, median } from './bench-options.ts';
import { type LibguestfsEnv, prepareLibguestfs } from './libguestfs-kernel.ts';
import { packagedKernelDisk } from './packaged-kernel-disk.ts';

const { runs, json, say } = benchOptions(1);
const root = new URL('..', import.meta.url).pathname;
const launcher = join(root, 'launcher');

/** The 1-minute load average now. */
const loadNow = () => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

interface Timed {
  seconds: number;
  /** 1-minute load average at the start and at the end. */
  load: [number, number];
  /** What the command said on stderr (the launcher's narration: how the appliance started). */
  said: string;
}

async function timed(command: string, args: string[], env: Record<string, string> = {}): Promise<Timed> {
  const load = loadNow();
  const started = performance.now();
  const result = await execa(command, args, { reject: false, env: { NO_COLOR: '1', ...env }, timeout: 3_600_000, stdout: 'ignore' });
  if (result.exitCode !== 0) throw new Error(`${String(result.stderr).trim().split('\n').at(-1)} (${command} ${args.at(-1)}, exit ${result.exitCode})`);
  const measured: Timed = { seconds: (performance.now() - started) / 1000, load: [load, loadNow()], said: String(result.stderr) };
  // Each figure as it comes, so a long run cut short still has the ones it took.
  say(`           ${measured.seconds.toFixed(1)} s, load ${load.toFixed(1)}-${measured.load[1].toFixed(1)}`);
  return measured;
}

/** A libguestfs tool, with the bench's kernel and inside the /lib/modules overlay if supermin must rebuild. */
function guestfsTool(guestfs: LibguestfsEnv, command: string[]): Promise<Timed> {
  const [program, ...args] = guestfs.wrap(command);
  return timed(program!, args, guestfs.env);
}

const medianOf = (list: Timed[]) => (list.length > 0 ? median(list.map((t) => t.seconds)) : null);
/** The lowest and highest load seen over a figure's runs. */
const loadRange = (list: Timed[]): [number, number] | null =>
  list.length > 0 ? [Math.min(...list.flatMap((t) => t.load)), Math.max(...list.flatMap((t) => t.load))] : null;
const showLoad = (range: [number, number] | null) => (range ? `load ${range[0].toFixed(1)}-${range[1].toFixed(1)}` : '');

const base = mkdtempSync(join(tmpdir(), 'pocketvm-bench-images-'));
const stick = join(base, 'stick');
try {
  await execa(launcher, ['init-stick', stick]);
  await execa('node', ['build.js', 'payload', '--guest', 'appliance'], { cwd: root });
  const disk = buildImageCorpus(say).find((s) => s.label === 'uefi-gpt')!.raw;
  let guestfs: LibguestfsEnv | undefined;
  const missing: string[] = [];
  say('libguestfs: building its appliance once (untimed)');
  try {
    guestfs = await prepareLibguestfs(root, base);
  } catch (error) {
    missing.push((error as Error).message.slice(0, 200));
  }
  const stateDir = join(stick, '.pocketvm', 'appliance');
  const close = () => execa(launcher, ['files', 'close', '--all', '--stick', stick], { reject: false });
  // Not --json: its narration says how the appliance started ("helper appliance ready in N s (resumed from its saved state)").
  const inspect = () => timed(launcher, ['image', 'inspect', disk, '--stick', stick]);
  const booted: Timed[] = [];
  const cold: Timed[] = [];
  const warm: Timed[] = [];
  const virt: Timed[] = [];
  for (let run = 1; run <= runs; run++) {
    say(`run ${run}/${runs}: image inspect, cold, no saved state (the appliance boots, then saves one)`);
    await close();
    rmSync(stateDir, { recursive: true, force: true });
    booted.push(await inspect());
    await close();
    say(`run ${run}/${runs}: image inspect, cold (the appliance resumes from its saved state)`);
    cold.push(await inspect());
    say(`run ${run}/${runs}: image inspect, appliance running`);
    warm.push(await inspect());
    await close();
    if (guestfs) {
      say(`run ${run}/${runs}: virt-inspector`);
      try {
        virt.push(await guestfsTool(guestfs, ['virt-inspector', '-a', disk]));
      } catch (error) {
        missing.push((error as Error).message.slice(0, 200));
      }
    }
  }
  // Capture against virt-v2v and qemu-img convert, the packaged-kernel system, once each per run.
  const v2vDisk = packagedKernelDisk(say);
  const allocated = (file: string) => statSync(file).blocks * 512;
  const captureRuns: (Timed & { bytes: number })[] = [];
  const v2vRuns: (Timed & { bytes: number })[] = [];
  const convertRuns: (Timed & { bytes: number })[] = [];
  const v2vMissing: string[] = [];
  for (let run = 1; run <= runs; run++) {
    say(`run ${run}/${runs}: image capture --smaller (appliance running)`);
    await execa(launcher, ['image', 'inspect', v2vDisk.raw, '--stick', stick], { reject: false });
    const name = `bench-${run}`;
    const captured = await timed(launcher, ['image', 'capture', v2vDisk.raw, '--smaller', '--name', name, '--stick', stick]);
    const stored = readdirSync(join(stick, 'images', 'store')).map((f) => join(stick, 'images', 'store', f));
    captureRuns.push({ ...captured, bytes: Math.max(...stored.map(allocated)) });
    await execa(launcher, ['image', 'rm', name, '--stick', stick], { reject: false });
    await close();
    say(`run ${run}/${runs}: qemu-img convert -O qcow2`);
    const converted = join(base, 'converted.qcow2');
    convertRuns.push({ ...(await timed('qemu-img', ['convert', '-O', 'qcow2', v2vDisk.raw, converted])), bytes: allocated(converted) });
    rmSync(converted, { force: true });
    if (!guestfs) continue;
    say(`run ${run}/${runs}: virt-v2v -i disk -o local`);
    const out = join(base, 'v2v');
    mkdirSync(out, { recursive: true });
    try {
      const v2v = await guestfsTool(guestfs, ['virt-v2v', '-i', 'disk', v2vDisk.raw, '-o', 'local', '-os', out, '-of', 'qcow2', '-on', 'bench']);
      v2vRuns.push({
        ...v2v,
        bytes: readdirSync(out)
          .filter((f) => f.startsWith('bench-sd'))
          .reduce((sum, f) => sum + allocated(join(out, f)), 0),
      });
    } catch (error) {
      v2vMissing.push((error as Error).message.slice(0, 200));
    }
    rmSync(out, { recursive: true, force: true });
  }
  const med = (list: (Timed & { bytes: number })[]) =>
    list.length > 0 ? { seconds: medianOf(list)!, bytes: median(list.map((r) => r.bytes)), load: loadRange(list)! } : null;
  const capture = med(captureRuns)!;
  const v2v = med(v2vRuns);
  const convert = med(convertRuns)!;
  const baseline = medianOf(virt);
  const line = (list: Timed[]) => ({ seconds: medianOf(list)!, ratio: baseline ? medianOf(list)! / baseline : null, load: loadRange(list) });
  /** Whether every cold run's appliance said it resumed from its saved state (else the cold line timed boots). */
  const coldResumed = cold.every((t) => t.said.includes('resumed from its saved state'));
  const figures = {
    disk: 'uefi-gpt (GPT: ESP, ext4 /, xfs /srv)',
    libguestfs: guestfs ? { kernel: guestfs.kernel, applianceBuildSeconds: guestfs.applianceBuildSeconds } : null,
    virtInspector: { seconds: baseline, load: loadRange(virt) },
    cold: { ...line(cold), resumed: coldResumed },
    coldBooted: line(booted),
    warm: line(warm),
    target: '<= 0.33',
    baselineMissing: [...new Set(missing)],
    capture: {
      disk: `packaged-kernel (MBR, ext4 /; Debian minbase with linux-image-${v2vDisk.kernelVersion} installed)`,
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
  const mib = (bytes: number) => `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  if (json) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
  else
    process.stdout.write(
      [
        `baseline   virt-inspector -a ${figures.disk}: ${baseline?.toFixed(1) ?? 'not run'} s ${showLoad(figures.virtInspector.load)}`,
        `cold       image inspect, appliance resumed from its saved state: ${figures.cold.seconds.toFixed(1)} s: ${figures.cold.ratio?.toFixed(2) ?? '-'} x (target <= 0.33) ${showLoad(figures.cold.load)}${coldResumed ? '' : ' (the appliance did NOT say it resumed: a boot was timed)'}`,
        `           no saved state yet (boots, then saves one): ${figures.coldBooted.seconds.toFixed(1)} s: ${figures.coldBooted.ratio?.toFixed(2) ?? '-'} x ${showLoad(figures.coldBooted.load)}`,
        `warm       image inspect, appliance running: ${figures.warm.seconds.toFixed(1)} s: ${figures.warm.ratio?.toFixed(2) ?? '-'} x (target <= 0.33) ${showLoad(figures.warm.load)}`,
        ...figures.baselineMissing.map((why) => `           baseline missing: ${why}`),
        ...(figures.libguestfs
          ? [
              `           libguestfs: kernel ${figures.libguestfs.kernel}; its appliance built once in ${figures.libguestfs.applianceBuildSeconds.toFixed(1)} s (untimed)`,
            ]
          : []),
        `capture    image capture --smaller ${figures.capture.disk}: ${capture.seconds.toFixed(1)} s, ${mib(capture.bytes)} on disk ${showLoad(capture.load)}`,
        `baseline   virt-v2v -i disk -o local -of qcow2: ${v2v ? `${v2v.seconds.toFixed(1)} s, ${mib(v2v.bytes)}: time ${figures.capture.timeRatioToVirtV2v!.toFixed(2)} x, size ${figures.capture.sizeRatioToVirtV2v!.toFixed(2)} x ${showLoad(v2v.load)}` : 'not run'}`,
        `baseline   qemu-img convert -O qcow2: ${convert.seconds.toFixed(1)} s, ${mib(convert.bytes)}: time ${figures.capture.timeRatioToConvert.toFixed(2)} x, size ${figures.capture.sizeRatioToConvert.toFixed(2)} x ${showLoad(convert.load)}`,
        ...figures.capture.baselineMissing.map((why) => `           virt-v2v missing: ${why}`),
        `           median of ${runs} run(s)`,
        '',
      ].join('\n'),
    );
} finally {
  await execa(launcher, ['files', 'close', '--all', '--stick', stick], { reject: false });
  rmSync(base, { recursive: true, force: true });
}
