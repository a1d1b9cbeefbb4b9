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
import { mkdtempSync, rmSync } from 'node:fs';
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
  const result = await execa(command, args, { reject: false, env: { NO_COLOR: '1', ...env }, timeout: 1_800_000, stdout: 'ignore' });
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
  const baseline = virt.length > 0 ? median(virt) : null;
  const figures = {
    disk: 'uefi-gpt (GPT: ESP, ext4 /, xfs /srv)',
    virtInspectorSeconds: baseline,
    cold: { seconds: median(cold), ratio: baseline ? median(cold) / baseline : null },
    warm: { seconds: median(warm), ratio: baseline ? median(warm) / baseline : null },
    target: '<= 0.33',
    baselineMissing: [...new Set(missing)],
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
        `           median of ${runs} run(s)`,
        '',
      ].join('\n'),
    );
} finally {
  await execa(launcher, ['files', 'close', '--all', '--stick', stick], { reject: false });
  rmSync(base, { recursive: true, force: true });
}
