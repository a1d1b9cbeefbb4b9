// bench/desktop: the desktop image (images/desktop) on the stick and its boot.
//
//   size:     the base image file as the stick holds it (payload/desktop/base-*.ext4),
//             the bytes its file system uses, and the download: the .deb sizes
//             (apt-cache, this machine's sources) of the packages installed in it
//   boot:     bare QEMU (TCG, 2 CPUs, 1 GiB) from spawn to the session-ready
//             marker on the console (DESKTOP_READY_MARKER: the desktop and the
//             terminal window are mapped); the same path the tests boot
//             (test/integration/desktop-machine.ts). This is the baseline for
//             the console page's "launch to the first desktop frame".
//   baseline: bare QEMU booting the default console guest to POCKETVM_READY,
//             alternating with the desktop boots in the same run: the ratio
//             says what the desktop costs over the smallest guest.
//
// Prints medians and ratios; never fails on a time.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { openGuestPayload } from '../src/payload/guest-payload.ts';
import { bootDesktop, desktopImage } from '../test/integration/desktop-machine.ts';
import { bootToMarker } from './bare-qemu.ts';
import { benchOptions, median } from './bench-options.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const { runs, json, say } = benchOptions(2);
const MiB = 1048576;

/** The packages in the image (its dpkg status, read with debugfs: no mount, no root) and their download size. */
async function downloadBytes(base: string): Promise<{ packages: number; bytes: number; unknown: string[] }> {
  const status = (await execa('debugfs', ['-R', 'cat /var/lib/dpkg/status', base], { stderr: 'ignore' })).stdout;
  const installed = status
    .split('\n\n')
    .filter((stanza) => /^Status: install ok installed$/m.test(stanza))
    .map((stanza) => `${/^Package: (.+)$/m.exec(stanza)?.[1]}=${/^Version: (.+)$/m.exec(stanza)?.[1]}`);
  const shown = await execa('apt-cache', ['show', '--no-all-versions', ...installed], { reject: false });
  let bytes = 0;
  const found = new Set<string>();
  for (const stanza of String(shown.stdout).split('\n\n')) {
    const name = /^Package: (.+)$/m.exec(stanza)?.[1];
    const size = /^Size: (\d+)$/m.exec(stanza)?.[1];
    if (name && size && !found.has(name)) {
      found.add(name);
      bytes += Number(size);
    }
  }
  return { packages: installed.length, bytes, unknown: installed.filter((p) => !found.has(p.split('=')[0]!)) };
}

async function usedBytes(base: string): Promise<number> {
  const header = (await execa('dumpe2fs', ['-h', base], { stderr: 'ignore' })).stdout;
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(header)?.[1]);
  return (field('Block count') - field('Free blocks')) * field('Block size');
}

async function consoleBoot(): Promise<number> {
  const payload = await openGuestPayload(join(root, 'payload'), 'default');
  return (await bootToMarker({ kernel: payload.kernel, initrd: payload.initrd, cmdline: payload.manifest.cmdline, memoryMiB: 1024, cpus: 2 })).ms;
}

async function desktopBoot(): Promise<number> {
  const machine = await bootDesktop({ user: 'bench' });
  try {
    return await machine.waitForSessionReady(1_800_000);
  } finally {
    await machine.stop();
  }
}

say('bench/desktop: the desktop image (node build.js image desktop; minutes the first time)');
const image = await desktopImage();
const download = await downloadBytes(image.base);
const used = await usedBytes(image.base);
say(`  base image on the stick  ${(image.bytes / MiB).toFixed(0)} MiB (${(used / MiB).toFixed(0)} MiB used by its file system)`);
say(
  `  download                 ${(download.bytes / MiB).toFixed(0)} MiB of .debs, ${download.packages} packages${download.unknown.length ? ` (${download.unknown.length} not in apt-cache)` : ''}`,
);

const desktop: number[] = [];
const baseline: number[] = [];
for (let i = 0; i < runs; i++) {
  // Alternating, so a change in the machine's load falls on both.
  baseline.push(await consoleBoot());
  desktop.push(await desktopBoot());
  say(
    `  run ${i + 1}/${runs}: desktop to session ready ${(desktop.at(-1)! / 1000).toFixed(1)} s, console guest to ready ${(baseline.at(-1)! / 1000).toFixed(1)} s`,
  );
}
const ratio = median(desktop) / median(baseline);
say(`  desktop boot to session ready  ${(median(desktop) / 1000).toFixed(1)} s median of ${runs} (bare QEMU, TCG, 2 CPUs)`);
say(`  baseline: console guest        ${(median(baseline) / 1000).toFixed(1)} s  ratio ${ratio.toFixed(2)}x`);
if (json) {
  process.stdout.write(
    `${JSON.stringify({
      imageBytes: image.bytes,
      usedBytes: used,
      downloadBytes: download.bytes,
      packages: download.packages,
      desktopReadyMs: median(desktop),
      consoleReadyMs: median(baseline),
      ratio,
      runs,
    })}\n`,
  );
}
