// The build steps `executables`, `qemu` and `stick` (build/steps.ts routes here).
import { resolve } from 'node:path';
import { buildExecutables, EXECUTABLE_PLATFORMS, type ExecutablePlatform } from './executables.ts';
import { lineProgress } from './progress.ts';
import { buildLinuxQemuBundle, importQemuBundle } from './qemu-bundle.ts';
import { buildStick } from './stick.ts';

const MiB = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

function values(args: string[], flag: string): string[] {
  const found: string[] = [];
  for (let i = 0; i < args.length; i++) if (args[i] === flag && args[i + 1] !== undefined) found.push(args[++i]!);
  return found;
}

function platformsOf(args: string[]): ExecutablePlatform[] | undefined {
  const asked = values(args, '--platform').flatMap((v) => v.split(','));
  if (asked.length === 0) return undefined;
  for (const p of asked)
    if (!(EXECUTABLE_PLATFORMS as readonly string[]).includes(p)) throw new Error(`unknown platform "${p}" (${EXECUTABLE_PLATFORMS.join(', ')})`);
  return asked as ExecutablePlatform[];
}

async function guarded(work: () => Promise<number>): Promise<number> {
  try {
    return await work();
  } catch (error) {
    process.stderr.write(`pocketvm: error: ${(error as Error).message}\n`);
    return 1;
  }
}

export function executablesStep(root: string, args: string[]): Promise<number> {
  if (args.includes('--help')) {
    process.stdout.write(
      `usage: node build.js executables [--platform P[,P]]\n\nBuilds the self-contained launcher for ${EXECUTABLE_PLATFORMS.join(', ')} into .cache/executables/<platform>/.\nOnly linux-x64 is ever run here; the others are built, never run.\n`,
    );
    return Promise.resolve(0);
  }
  return guarded(async () => {
    const platforms = platformsOf(args);
    const built = await buildExecutables({ root, ...(platforms ? { platforms } : {}), onProgress: lineProgress('executables') });
    for (const b of built)
      process.stdout.write(`${b.platform.padEnd(11)} ${MiB(b.bytes).padStart(10)}  Node ${b.nodeVersion}  ${b.cached ? 'up to date' : 'built'}  ${b.path}\n`);
    return 0;
  });
}

export function qemuStep(root: string, args: string[]): Promise<number> {
  if (args.includes('--help')) {
    process.stdout.write(
      "usage: node build.js qemu [--from-dir PLATFORM=DIR ...]\n\nBundles this machine's QEMU (binary, libraries, loader, firmware) for linux-x64 into\n.cache/stick-parts/qemu/linux-x64/. --from-dir adds a bundle made elsewhere\n(win-x64, darwin-x64, darwin-arm64: a folder with qemu-system-x86_64[.exe] at its top).\n",
    );
    return Promise.resolve(0);
  }
  return guarded(async () => {
    const linux = await buildLinuxQemuBundle({ root, onProgress: lineProgress('qemu') });
    process.stdout.write(
      `linux-x64   QEMU ${linux.qemuVersion}, ${linux.files} files, ${MiB(linux.bytes)}, ${linux.cached ? 'up to date' : 'built'}  ${linux.dir}\n`,
    );
    for (const spec of values(args, '--from-dir')) {
      const at = spec.indexOf('=');
      if (at < 1) throw new Error(`--from-dir wants PLATFORM=DIR, not "${spec}"`);
      const imported = await importQemuBundle(root, spec.slice(0, at), resolve(spec.slice(at + 1)));
      process.stdout.write(`${spec.slice(0, at).padEnd(11)} ${imported.files} files, ${MiB(imported.bytes)}, copied from ${spec.slice(at + 1)}\n`);
    }
    return 0;
  });
}

export function stickStep(root: string, args: string[]): Promise<number> {
  const dir = args.find((a, i) => !a.startsWith('--') && !['--platform', '--guest'].includes(args[i - 1] ?? ''));
  if (args.includes('--help') || !dir) {
    process.stdout.write(
      'usage: node build.js stick DIR [--platform P[,P]] [--guest NAME ...]\n\nA complete stick in DIR (empty, or an existing stick): entries, executables, QEMU bundles\n(linux-x64, plus any added with `node build.js qemu --from-dir`), payload, README, manifest.\n',
    );
    return Promise.resolve(dir || args.includes('--help') ? 0 : 2);
  }
  return guarded(async () => {
    const platforms = platformsOf(args);
    const guests = values(args, '--guest');
    const result = await buildStick({
      root,
      dir: resolve(dir),
      ...(platforms ? { platforms } : {}),
      ...(guests.length ? { guests } : {}),
      onProgress: lineProgress('stick'),
    });
    const c = result.bytesByComponent;
    process.stdout.write(
      `stick ${result.dir}: ${result.files} files; executables ${MiB(c.executables)} (${result.platforms.join(', ')}), QEMU ${MiB(c.qemu)} (${result.qemuPlatforms.join(', ')}), payload ${MiB(c.payload)}, other ${MiB(c.other)}\n`,
    );
    return 0;
  });
}
