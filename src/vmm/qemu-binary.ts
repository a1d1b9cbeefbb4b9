// Finds the QEMU to run: the portable bundle on the stick first (a host with
// nothing installed must work), then POCKETVM_QEMU, then the host's PATH.
// A Linux bundle (build/stick/qemu-bundle.ts) runs through its own dynamic
// loader, as its qemu-bundle.json says; bundles for other hosts are a plain
// folder with the executable at the top.
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { QemuMissingError } from '../errors.ts';
import type { HostAdapter } from '../hostprobe/host-adapter.ts';

export interface QemuBinaries {
  system: string;
  source: 'stick' | 'env' | 'path';
  /** Arguments that come before QEMU's own (the bundled loader's). */
  prefixArgs?: string[];
  /** Environment QEMU needs (the bundle's module folder). */
  env?: Record<string, string>;
}

/** The part of build/stick/qemu-bundle.ts's QemuBundleManifest the launcher reads. */
interface QemuBundleFile {
  loader: string;
  libraryPath: string;
  binaries: { system: string; img: string };
  dataDir: string;
  moduleDir: string;
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
  return {
    system: loader,
    source: 'stick',
    // --inhibit-cache: the host's /etc/ld.so.cache is never consulted.
    prefixArgs: ['--inhibit-cache', '--library-path', join(dir, bundle.libraryPath), join(dir, bundle.binaries[tool]), ...(tool === 'system' ? ['-L', join(dir, bundle.dataDir)] : [])],
    env: { QEMU_MODULE_DIR: join(dir, bundle.moduleDir) },
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

export function findQemu(host: HostAdapter, stickRoot: string | undefined, env: NodeJS.ProcessEnv = process.env): QemuBinaries {
  const name = `qemu-system-x86_64${host.executableSuffix}`;
  if (stickRoot) {
    const viaLoader = loaderBundle(join(stickRoot, '.pocketvm', 'qemu', host.platform));
    if (viaLoader) return viaLoader;
    const bundled = join(stickRoot, '.pocketvm', 'qemu', host.platform, name);
    if (executable(bundled)) return { system: bundled, source: 'stick' };
  }
  const override = env['POCKETVM_QEMU'];
  if (override) {
    if (executable(override)) return { system: override, source: 'env' };
    throw new QemuMissingError(override, 'POCKETVM_QEMU names a file that is not an executable QEMU; fix or unset it');
  }
  for (const dir of (env['PATH'] ?? '').split(delimiter)) {
    if (dir && executable(join(dir, name))) return { system: join(dir, name), source: 'path' };
  }
  throw new QemuMissingError(name, host.qemuInstallHint);
}

/**
 * qemu-img, found the same way (stick bundle, then beside POCKETVM_QEMU, then
 * PATH). Run it as `system` with `prefixArgs` first and `env` added.
 */
export function findQemuImg(host: HostAdapter, stickRoot: string | undefined, env: NodeJS.ProcessEnv = process.env): QemuBinaries {
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
