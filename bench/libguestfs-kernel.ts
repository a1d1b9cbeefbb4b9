// A kernel for libguestfs where supermin finds none of the host's (a
// container: nothing in /boot or /lib/modules), so the benches (virt-cat,
// guestmount, virt-inspector, virt-v2v baselines) and the tests that run
// libguestfs's own tools (import.test.ts's virt-v2v round trip, the gated
// virt-inspector comparisons) can run here too.
//
// The Debian kernel the payload build already downloaded and extracted under
// .cache/payload/debs (read, never written: those files are hard links shared
// by every worktree) is handed to supermin through SUPERMIN_KERNEL,
// SUPERMIN_MODULES and SUPERMIN_KERNEL_VERSION. Two things supermin also
// needs are made beside it: the modules' index (the .deb ships none: `depmod
// -b` on a hard-linked copy of the modules tree), and, while it builds its
// appliance, a /lib/modules on the host (it copies that folder's attributes):
// an overlay over /lib inside a private mount namespace (`unshare -m`, so
// root), gone when that one command ends.
//
// Two ways to hold it: prepareLibguestfs (the benches) in a temporary folder,
// its appliance built by one untimed throwaway run; sharedLibguestfs (the
// tests) under .cache/libguestfs/KEY, KEY a hash of the kernel and the host's
// package set (dpkg's status file: supermin builds its appliance from the
// host's packages, and libguestfs builds it again when they change), so one
// appliance build serves every test of a run and every later run until the
// kernel or a package changes; its first tool builds the appliance.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';

export interface LibguestfsEnv {
  env: Record<string, string>;
  /** What was found and made, for the bench's report. */
  kernel: string;
  /** Seconds the one-time supermin build took (untimed in the figures). */
  applianceBuildSeconds: number;
  /**
   * A command as it must run where supermin may have to build its appliance
   * again (the host's package set changed since: an apt-get install by
   * anyone marks the cached appliance stale): inside the /lib/modules
   * overlay when the host has none, else unchanged. Costs one unshare and
   * one mount, milliseconds; bench/images runs virt-v2v with it.
   */
  wrap: (command: string[]) => string[];
}

/** The kernel the payload build extracted: the appliance payload's version if recorded, else the newest. */
function payloadKernel(root: string): { version: string; vmlinuz: string; modules: string } {
  const debs = join(root, '.cache', 'payload', 'debs');
  const found = readdirSync(debs)
    .filter((name) => /^linux-image-\d.*_amd64$/.test(name))
    .flatMap((name) => {
      const version = /^linux-image-([^_]+)_/.exec(name)![1]!;
      const vmlinuz = join(debs, name, 'boot', `vmlinuz-${version}`);
      const modules = join(debs, name, 'lib', 'modules', version);
      return existsSync(vmlinuz) && existsSync(modules) ? [{ version, vmlinuz, modules }] : [];
    })
    .sort((a, b) => a.version.localeCompare(b.version, 'en', { numeric: true }));
  let wanted: string | undefined;
  try {
    wanted = (JSON.parse(readFileSync(join(root, 'payload', 'appliance', 'payload.stamp.json'), 'utf8')) as { kernelVersion?: string }).kernelVersion;
  } catch {
    wanted = undefined;
  }
  const kernel = found.find((k) => k.version === wanted) ?? found.at(-1);
  if (!kernel) throw new Error(`no extracted kernel under ${debs} (build the payload first: node build.js payload)`);
  return kernel;
}

/** The host's own kernel modules folder, when it has one with a kernel in it (then libguestfs uses the host's kernel as usual). */
const hostHasKernel = () => existsSync('/lib/modules') && readdirSync('/lib/modules').length > 0;

/**
 * The payload's kernel made ready for supermin under `folder` (its modules
 * tree with depmod's index; the /lib overlay's folders) and the environment
 * and wrap that hand it over. Nothing when the host has a kernel of its own.
 */
async function kernelFor(root: string, folder: string, env: Record<string, string>): Promise<{ kernel: string; wrap: (command: string[]) => string[] }> {
  if (hostHasKernel()) return { kernel: 'the host kernel', wrap: (command) => command };
  const found = payloadKernel(root);
  const modulesRoot = join(folder, 'kernel');
  const copy = join(modulesRoot, 'lib', 'modules', found.version);
  if (!existsSync(join(copy, 'modules.dep'))) {
    rmSync(modulesRoot, { recursive: true, force: true });
    mkdirSync(join(modulesRoot, 'lib', 'modules'), { recursive: true });
    // Hard links where the folders share a file system, else a copy; depmod then adds its own new files.
    const linked = await execa('cp', ['-al', found.modules, copy], { reject: false });
    if (linked.exitCode !== 0) await execa('cp', ['-a', found.modules, copy]);
    await execa('depmod', ['-b', modulesRoot, found.version]);
  }
  Object.assign(env, { SUPERMIN_KERNEL: found.vmlinuz, SUPERMIN_MODULES: copy, SUPERMIN_KERNEL_VERSION: found.version });
  const kernel = `${found.vmlinuz} (${found.version}, from .cache/payload)`;
  if (existsSync('/lib/modules')) return { kernel, wrap: (command) => command };
  const lib = realpathSync('/lib');
  const upper = join(folder, 'lib-overlay', 'upper');
  const scratch = join(folder, 'lib-overlay', 'work');
  mkdirSync(join(upper, 'modules'), { recursive: true });
  mkdirSync(scratch, { recursive: true });
  const mount = `mount -t overlay overlay -o lowerdir=${lib},upperdir=${upper},workdir=${scratch} ${lib}`;
  return { kernel, wrap: (command) => ['unshare', '-m', 'sh', '-c', `${mount} && exec "$@"`, 'sh', ...command] };
}

/**
 * The environment virt-cat and guestmount run with, the appliance built once.
 * Throws (the caller reports the baseline as missing) when it cannot be done.
 */
export async function prepareLibguestfs(root: string, work: string): Promise<LibguestfsEnv> {
  const env: Record<string, string> = { LIBGUESTFS_BACKEND: 'direct', LIBGUESTFS_CACHEDIR: join(work, 'guestfs-cache') };
  mkdirSync(env['LIBGUESTFS_CACHEDIR']!, { recursive: true });
  const { kernel, wrap } = await kernelFor(root, work, env);
  // One throwaway run builds and caches supermin's appliance (a `guestfish run` on no disk).
  const started = performance.now();
  const [command, ...args] = wrap(['guestfish', '-a', '/dev/null', 'run']);
  const built = await execa(command!, args, { reject: false, env, timeout: 900_000 });
  if (built.exitCode !== 0) throw new Error(`libguestfs could not build or start its appliance: ${String(built.stderr).split('\n').at(-1) ?? ''}`);
  return { env, kernel, applianceBuildSeconds: (performance.now() - started) / 1000, wrap };
}

export interface SharedLibguestfs {
  env: Record<string, string>;
  kernel: string;
  /** The cache folder (.cache/libguestfs/KEY). */
  folder: string;
  /** Whether supermin's appliance was already built there (false: the next libguestfs tool builds it, minutes under TCG). */
  applianceCached: boolean;
  wrap: (command: string[]) => string[];
}

/**
 * libguestfs's environment with its appliance cached under
 * .cache/libguestfs/KEY (KEY: the kernel and the host's package set; other
 * keys' folders are removed, they would never be used again). Builds nothing
 * itself: the first libguestfs tool run with this environment builds the
 * appliance (supermin's `--if-newer`), every later one reuses it. One tool
 * at a time (they share the /lib overlay's work folder): the tests run one
 * at a time.
 */
export async function sharedLibguestfs(root: string): Promise<SharedLibguestfs> {
  const kernel = hostHasKernel() ? `host ${readdirSync('/lib/modules').sort().join(',')}` : payloadKernel(root);
  const hash = createHash('sha256');
  hash.update(JSON.stringify(typeof kernel === 'string' ? kernel : [kernel.version, statSync(kernel.vmlinuz).size]));
  hash.update(readFileSync('/var/lib/dpkg/status'));
  const key = hash.digest('hex').slice(0, 16);
  const cache = join(root, '.cache', 'libguestfs');
  const folder = join(cache, key);
  mkdirSync(folder, { recursive: true });
  for (const other of readdirSync(cache)) if (other !== key) rmSync(join(cache, other), { recursive: true, force: true });
  const cachedir = join(folder, 'guestfs-cache');
  mkdirSync(cachedir, { recursive: true });
  const env: Record<string, string> = { LIBGUESTFS_BACKEND: 'direct', LIBGUESTFS_CACHEDIR: cachedir };
  const made = await kernelFor(root, folder, env);
  const uid = process.getuid?.() ?? 0;
  const applianceCached = existsSync(join(cachedir, `.guestfs-${uid}`, 'appliance.d', 'root'));
  return { env, kernel: made.kernel, folder, applianceCached, wrap: made.wrap };
}
