// bench/files: `launcher files` against libguestfs on the same ext4 image, in
// the same run (issue 20's benchmark):
//
//   cold cat   `launcher files cat IMG:/etc/os-release` with no appliance
//              running (it starts one, opens the image read-only, reads,
//              closes) against `virt-cat -a IMG -m /dev/sda /etc/os-release`
//              (LIBGUESTFS_BACKEND=direct, which also boots an appliance; -m
//              spares it the inspection). Twice: on a stick with no saved
//              appliance state (the appliance boots, as every cold start did
//              before the saved state, and saves its state), then with the
//              state (it resumes). Target: <= 0.33 x.
//   read       a --mib (default 256) MiB file: `files get` from an open source
//              against `cat` from a `guestmount --ro` of the same image, both
//              into a file in the same folder. Target: >= 1.0 x (throughput).
//   share read the same file through `files share` of the open source: over
//              WebDAV (`curl --digest`) and over SMB (`smbclient get`), each
//              against the same guestmount + cat. Target: >= 1.0 x.
//   open       from nothing running to `files open` printing what it found
//              (the appliance's resume + hot-plug + mount), and on to a
//              `files share` whose WebDAV answers a GET: against Linsk's
//              published 15-22 s to a share.
//
// --share-only runs the share read and its baseline alone (no cold cat, no
// files get): what a change to the share's servers needs measured.
//
// Prints medians and ratios; never fails on a time. Needs libguestfs-tools
// (virt-cat, guestmount, guestfish) and e2fsprogs; run as a user who can use
// /dev/fuse. Where supermin finds no host kernel (a container), the bench
// gives it the payload build's Debian kernel (bench/libguestfs-kernel.ts);
// a baseline that still cannot run is reported as missing, with why.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { benchOptions, median, numberOption } from './bench-options.ts';
import { type LibguestfsEnv, prepareLibguestfs } from './libguestfs-kernel.ts';

const { runs, json, say } = benchOptions(1);
const MIB = numberOption('--mib', 256);
const shareOnly = process.argv.includes('--share-only');
const root = new URL('..', import.meta.url).pathname;
const launcher = join(root, 'launcher');

/** A baseline that may be unable to run on this host: its time, or why not. */
async function baseline(command: string, args: string[], env: Record<string, string> = {}): Promise<number | string> {
  try {
    return await timed(command, args, env);
  } catch (error) {
    return (error as Error).message.split('\n')[0]!.slice(0, 200);
  }
}

async function timed(command: string, args: string[], env: Record<string, string> = {}): Promise<number> {
  const started = performance.now();
  const result = await execa(command, args, { reject: false, env: { NO_COLOR: '1', ...env }, timeout: 900_000, stdout: 'ignore' });
  if (result.exitCode !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.exitCode}): ${String(result.stderr)}`);
  return (performance.now() - started) / 1000;
}

const base = mkdtempSync(join(tmpdir(), 'pocketvm-bench-files-'));
try {
  const stick = join(base, 'stick');
  await execa(launcher, ['init-stick', stick]);
  await execa('node', ['build.js', 'payload', '--guest', 'appliance'], { cwd: root });
  const tree = join(base, 'tree');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  writeFileSync(join(tree, 'etc', 'os-release'), 'PRETTY_NAME="bench"\n');
  say(`making a ${MIB} MiB file on an ext4 image`);
  writeFileSync(join(tree, 'big.bin'), randomBytes(MIB << 20));
  const image = join(base, 'ext4.img');
  writeFileSync(image, '');
  await execa('truncate', ['-s', `${MIB + 64}M`, image]);
  await execa('mke2fs', ['-q', '-t', 'ext4', '-d', tree, image]);
  rmSync(tree, { recursive: true });
  const files = (args: string[]) => timed(launcher, ['files', ...args, '--stick', stick]);

  const missing: string[] = [];
  say('preparing libguestfs (its appliance is built once, untimed)');
  let guestfs: LibguestfsEnv | undefined;
  try {
    guestfs = await prepareLibguestfs(root, base);
  } catch (error) {
    missing.push((error as Error).message.split('\n')[0]!.slice(0, 200));
  }
  const guestfsEnv = guestfs?.env ?? { LIBGUESTFS_BACKEND: 'direct' };
  const stateDir = join(stick, '.pocketvm', 'appliance');

  const cold = { booted: [] as number[], resumed: [] as number[], virtCat: [] as number[] };
  const keep = (into: number[], value: number | string) => (typeof value === 'number' ? into.push(value) : missing.push(value));
  const open: number[] = [];
  const read = { pocketvm: [] as number[], webdav: [] as number[], smb: [] as number[], guestmount: [] as number[], mountSeconds: [] as number[] };
  const toShare: number[] = [];
  async function coldCat(run: number): Promise<void> {
    say(`run ${run}/${runs}: cold cat, booting (no saved state), then resuming`);
    await files(['close', '--all']);
    rmSync(stateDir, { recursive: true, force: true });
    cold.booted.push(await files(['cat', `${image}:/etc/os-release`]));
    await files(['close', '--all']);
    cold.resumed.push(await files(['cat', `${image}:/etc/os-release`]));
    await files(['close', '--all']);
    keep(cold.virtCat, await baseline('virt-cat', ['-a', image, '-m', '/dev/sda', '/etc/os-release'], guestfsEnv));
  }
  for (let run = 1; run <= runs; run++) {
    if (!shareOnly) await coldCat(run);
    say(`run ${run}/${runs}: open from nothing, then ${MIB} MiB read`);
    const started = performance.now();
    open.push(await files(['open', image]));
    const shared = JSON.parse(String((await execa(launcher, ['files', 'share', 'ext4', '--json', '--stick', stick], { env: { NO_COLOR: '1' } })).stdout)) as {
      webdav: { url: string };
      smb: { port: number };
      user: string;
      password: string;
    };
    const login = `${shared.user}:${shared.password}`;
    await timed('curl', ['-sSf', '--digest', '-u', login, '-o', '/dev/null', `${shared.webdav.url}etc/os-release`]);
    toShare.push((performance.now() - started) / 1000);
    const out = join(base, 'out.bin');
    if (!shareOnly) read.pocketvm.push(await files(['get', 'ext4:/big.bin', out]));
    rmSync(out, { force: true });
    read.webdav.push(await timed('curl', ['-sSf', '--digest', '-u', login, '-o', out, `${shared.webdav.url}big.bin`]));
    rmSync(out, { force: true });
    const smbLogin = `${shared.user}%${shared.password}`;
    read.smb.push(await timed('smbclient', ['-t', '600', '-p', String(shared.smb.port), '//127.0.0.1/ext4', '-U', smbLogin, '-c', `get big.bin ${out}`]));
    await files(['close', '--all']);
    rmSync(out, { force: true });
    const mnt = join(base, 'mnt');
    mkdirSync(mnt, { recursive: true });
    const mounted = await baseline('guestmount', ['-a', image, '-m', '/dev/sda', '--ro', mnt], guestfsEnv);
    keep(read.mountSeconds, mounted);
    try {
      if (typeof mounted === 'number') read.guestmount.push(await timed('sh', ['-c', `cat "${join(mnt, 'big.bin')}" > "${out}"`]));
    } finally {
      await execa('guestunmount', [mnt], { reject: false });
      rmSync(out, { force: true });
    }
  }
  const med = (values: number[]) => (values.length > 0 ? median(values) : null);
  const virtCat = med(cold.virtCat);
  const guestmountCat = med(read.guestmount);
  const figures = {
    coldCat: {
      resumedSeconds: median(cold.resumed),
      bootedSeconds: median(cold.booted),
      virtCatSeconds: virtCat,
      ratio: virtCat ? median(cold.resumed) / virtCat : null,
      bootedRatio: virtCat ? median(cold.booted) / virtCat : null,
      target: '<= 0.33',
    },
    read: {
      mib: MIB,
      filesGetMiBs: MIB / median(read.pocketvm),
      guestmountCatMiBs: guestmountCat ? MIB / guestmountCat : null,
      guestmountMountSeconds: med(read.mountSeconds),
      ratio: guestmountCat ? guestmountCat / median(read.pocketvm) : null,
      target: '>= 1.0',
    },
    shareRead: {
      webdavMiBs: MIB / median(read.webdav),
      smbMiBs: MIB / median(read.smb),
      webdavRatio: guestmountCat ? guestmountCat / median(read.webdav) : null,
      smbRatio: guestmountCat ? guestmountCat / median(read.smb) : null,
      target: '>= 1.0',
    },
    openFromNothingSeconds: median(open),
    openToShareSeconds: median(toShare),
    linskToShareSeconds: '15-22',
    baselinesMissing: [...new Set(missing)],
    libguestfs: guestfs ? { kernel: guestfs.kernel, applianceBuildSeconds: guestfs.applianceBuildSeconds } : null,
    runs,
  };
  if (json) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
  else {
    const f = figures;
    process.stdout.write(
      [
        ...(shareOnly
          ? [
              `read       guestmount + cat ${f.read.guestmountCatMiBs?.toFixed(1) ?? 'not run'} MiB/s (its mount ${f.read.guestmountMountSeconds?.toFixed(1) ?? '-'} s); --share-only: no cold cat, no files get`,
            ]
          : [
              `cold cat   files cat ${f.coldCat.resumedSeconds.toFixed(1)} s resumed, virt-cat ${f.coldCat.virtCatSeconds?.toFixed(1) ?? 'not run'} s: ${f.coldCat.ratio?.toFixed(2) ?? '-'} x (target <= 0.33)`,
              `           booting instead (no saved state; it then saves one): ${f.coldCat.bootedSeconds.toFixed(1)} s: ${f.coldCat.bootedRatio?.toFixed(2) ?? '-'} x`,
              `read       files get ${f.read.filesGetMiBs.toFixed(1)} MiB/s, guestmount + cat ${f.read.guestmountCatMiBs?.toFixed(1) ?? 'not run'} MiB/s (its mount ${f.read.guestmountMountSeconds?.toFixed(1) ?? '-'} s): ${f.read.ratio?.toFixed(2) ?? '-'} x (target >= 1.0)`,
            ]),
        ...f.baselinesMissing.map((why) => `           baseline missing: ${why}`),
        `share read WebDAV ${f.shareRead.webdavMiBs.toFixed(1)} MiB/s (${f.shareRead.webdavRatio?.toFixed(2) ?? '-'} x), SMB ${f.shareRead.smbMiBs.toFixed(1)} MiB/s (${f.shareRead.smbRatio?.toFixed(2) ?? '-'} x) against guestmount + cat (target >= 1.0)`,
        `open       from nothing to files open done: ${f.openFromNothingSeconds.toFixed(1)} s; to a share that answers: ${f.openToShareSeconds.toFixed(1)} s (Linsk publishes 15-22 s to a share)`,
        ...(f.libguestfs
          ? [`           libguestfs: kernel ${f.libguestfs.kernel}; its appliance built once in ${f.libguestfs.applianceBuildSeconds.toFixed(1)} s (untimed)`]
          : []),
        `           median of ${runs} run(s)`,
        '',
      ].join('\n'),
    );
  }
} finally {
  await execa(launcher, ['files', 'close', '--all', '--stick', join(base, 'stick')], { reject: false });
  rmSync(base, { recursive: true, force: true });
}
