// Finds the QEMU to run: the portable bundle on the stick first (a host with
// nothing installed must work), then POCKETVM_QEMU, then the host's PATH.
// A Linux bundle (build/stick/qemu-bundle.ts) runs through its own dynamic
// loader, as its qemu-bundle.json says; bundles for other hosts are a plain
// folder with the executable at the top.
//
// On Linux QEMU is made not dumpable by a preload object
// (src/vmm/no-dump-preload.c): through the bundled loader's --preload, or
// LD_PRELOAD for a host QEMU run from a checkout (.cache/host/linux-x64/, built
// by `node build.js test` or `qemu`). Without it QEMU still starts, and
// `notice` says so in one line.
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { QemuMissingError } from '../errors.ts';
import type { HostPlatform } from '../platform/host-platform.ts';
import { codeRoot, packaged } from '../runtime/self.ts';

/** The preload's file name (build/stick/no-dump-preload.ts builds it). */
export const NO_DUMP_PRELOAD = 'pocketvm-no-dump.so';

export interface QemuBinaries {
  system: string;
  source: 'stick' | 'env' | 'path';
  /** Arguments that come before QEMU's own (the bundled loader's). */
  prefixArgs?: string[];
  /** Environment QEMU needs (the bundle's module folder). */
  env?: Record<string, string>;
  /** Linux: whether QEMU gets the preload that makes it not dumpable. */
  notDumpable?: boolean;
  /** One line for the person when something is off but QEMU still runs (the preload missing). */
  notice?: string;
}

/** The part of build/stick/qemu-bundle.ts's QemuBundleManifest the launcher reads. */
interface QemuBundleFile {
  loader: string;
  libraryPath: string;
  binaries: { system: string; img: string };
  dataDir: string;
  moduleDir: string;
  preload?: string;
}

export const QEMU_BUNDLE_FILE = 'qemu-bundle.json';

function loaderBundle(dir: string, tool: 'system' | 'img' = 'system'): QemuBinaries | undefined {
  let bundle: QemuBundleFile;
  try {
    bundle = JSON.parse(readFileSync(join(dir, QEMU_BUNDLE_FILE), 'utf8')) as QemuBundleFile;
  } catch {
    return undefined;
  }
  const loader = join(dir, bundle.loader);
  if (!executable(loader)) return undefined;
  const preload = bundle.preload ? join(dir, bundle.preload) : undefined;
  const preloaded = preload !== undefined && existsSync(preload);
  return {
    system: loader,
    source: 'stick',
    notDumpable: preloaded,
    ...(preloaded ? {} : { notice: missingPreload(preload ?? join(dir, 'lib', NO_DUMP_PRELOAD)) }),
    // --inhibit-cache: the host's /etc/ld.so.cache is never consulted.
    prefixArgs: [
      '--inhibit-cache',
      ...(preloaded ? ['--preload', preload] : []),
      '--library-path',
      join(dir, bundle.libraryPath),
      join(dir, bundle.binaries[tool]),
      ...(tool === 'system' ? ['-L', join(dir, bundle.dataDir)] : []),
    ],
    env: { QEMU_MODULE_DIR: join(dir, bundle.moduleDir) },
  };
}

function missingPreload(path: string): string {
  return `QEMU runs dumpable: ${path} is missing (core dumps stay off; rebuild the stick or run \`node build.js qemu\`)`;
}

/** A host QEMU on Linux gets the checkout's preload through LD_PRELOAD. */
function withHostPreload(found: QemuBinaries, host: HostPlatform, checkoutRoot: string | undefined): QemuBinaries {
  if (!host.qemuNoDumpPreload) return found;
  const preload = checkoutRoot ? join(checkoutRoot, '.cache', 'host', 'linux-x64', NO_DUMP_PRELOAD) : undefined;
  if (preload && existsSync(preload)) return { ...found, notDumpable: true, env: { ...found.env, LD_PRELOAD: preload } };
  return {
    ...found,
    notDumpable: false,
    notice: preload
      ? missingPreload(`${preload} (a checkout builds it with gcc-12 at \`launcher demo\`, \`run\` or \`node build.js test\`)`)
      : "QEMU runs dumpable: this stick has no portable QEMU for Linux, so no preload to make the host's QEMU not dumpable (core dumps stay off)",
  };
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** `checkoutRoot`: where a source run's .cache/ is (undefined in the executable). */
export function findQemu(
  host: HostPlatform,
  stickRoot: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  checkoutRoot: string | undefined = packaged ? undefined : codeRoot,
): QemuBinaries {
  const name = `qemu-system-x86_64${host.executableSuffix}`;
  if (stickRoot) {
    const viaLoader = loaderBundle(join(stickRoot, '.pocketvm', 'qemu', host.platform));
    if (viaLoader) return viaLoader;
    const bundled = join(stickRoot, '.pocketvm', 'qemu', host.platform, name);
    if (executable(bundled)) return withHostPreload({ system: bundled, source: 'stick' }, host, checkoutRoot);
  }
  const override = env['POCKETVM_QEMU'];
  if (override) {
    if (executable(override)) return withHostPreload({ system: override, source: 'env' }, host, checkoutRoot);
    throw new QemuMissingError(override, 'POCKETVM_QEMU names a file that is not an executable QEMU; fix or unset it');
  }
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir && executable(join(dir, name))) return withHostPreload({ system: join(dir, name), source: 'path' }, host, checkoutRoot);
  }
  throw new QemuMissingError(name, host.qemuInstallHint);
}

/**
 * qemu-img, found the same way (stick bundle, then beside POCKETVM_QEMU, then
 * PATH). Run it as `system` with `prefixArgs` first and `env` added.
 */
export function findQemuImg(host: HostPlatform, stickRoot: string | undefined, env: NodeJS.ProcessEnv = process.env): QemuBinaries {
  const name = `qemu-img${host.executableSuffix}`;
  if (stickRoot) {
    const viaLoader = loaderBundle(join(stickRoot, '.pocketvm', 'qemu', host.platform), 'img');
    if (viaLoader) return viaLoader;
    const bundled = join(stickRoot, '.pocketvm', 'qemu', host.platform, name);
    if (executable(bundled)) return { system: bundled, source: 'stick' };
  }
  const override = env['POCKETVM_QEMU'];
  if (override && executable(join(dirname(override), name))) return { system: join(dirname(override), name), source: 'env' };
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir && executable(join(dir, name))) return { system: join(dir, name), source: 'path' };
  }
  throw new QemuMissingError(name, host.qemuInstallHint);
}
