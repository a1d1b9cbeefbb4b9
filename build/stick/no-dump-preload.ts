// The preload object that makes QEMU not dumpable on Linux
// (src/vmm/no-dump-preload.c): compiled with the build machine's gcc-12 into
// the portable QEMU bundle (lib/, named in qemu-bundle.json) and, for runs
// from a checkout with the host's QEMU, into .cache/host/linux-x64/, where
// src/vmm/qemu-binary.ts finds it. It links against nothing, so one object
// serves any Linux x86-64 host.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The preload's file name, in the bundle's lib/ and in the checkout's cache. */
export const NO_DUMP_PRELOAD = 'pocketvm-no-dump.so';

export function noDumpPreloadSource(root: string): string {
  return join(root, 'src', 'vmm', 'no-dump-preload.c');
}

/** Where a checkout keeps its own build (src/vmm/qemu-binary.ts reads the same path). */
export function checkoutNoDumpPreload(root: string): string {
  return join(root, '.cache', 'host', 'linux-x64', NO_DUMP_PRELOAD);
}

/** Compiles the preload to `out` (written whole or not at all). */
export function compileNoDumpPreload(root: string, out: string): void {
  mkdirSync(dirname(out), { recursive: true });
  const partial = `${out}.partial`;
  const result = spawnSync('gcc-12', ['-nostdlib', '-shared', '-fPIC', '-Os', '-s', '-Wall', '-Wextra', '-Werror', '-o', partial, noDumpPreloadSource(root)], {
    encoding: 'utf8',
  });
  if (result.error) throw new Error(`compiling ${NO_DUMP_PRELOAD} needs gcc-12 (apt-get install gcc-12): ${result.error.message}`);
  if (result.status !== 0) throw new Error(`compiling ${NO_DUMP_PRELOAD} failed: ${result.stderr.trim()}`);
  renameSync(partial, out);
}

/** The checkout's preload, rebuilt when its source is newer; its path. */
export function ensureCheckoutNoDumpPreload(root: string): string {
  const out = checkoutNoDumpPreload(root);
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(noDumpPreloadSource(root)).mtimeMs) compileNoDumpPreload(root, out);
  return out;
}
