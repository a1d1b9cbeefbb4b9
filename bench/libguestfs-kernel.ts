// A kernel for libguestfs's baselines where supermin finds none of the
// host's (a container: nothing in /boot or /lib/modules), so bench/files can
// run virt-cat and guestmount here too. Only the bench uses it.
//
// The Debian kernel the payload build already downloaded and extracted under
// .cache/payload/debs (read, never written: those files are hard links shared
// by every worktree) is handed to supermin through SUPERMIN_KERNEL,
// SUPERMIN_MODULES and SUPERMIN_KERNEL_VERSION. Two things supermin also
// needs are made in the bench's own temporary folder: the modules' index
// (the .deb ships none: `depmod -b` on a hard-linked copy of the modules
// tree), and, while it builds its appliance once, a /lib/modules on the host
// (it copies that folder's attributes): an overlay over /lib inside a private
// mount namespace (`unshare -m`, so root), gone when that one command ends.
// The built appliance is cached in a private LIBGUESTFS_CACHEDIR, which every
// timed run then reuses as libguestfs normally does.
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
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

/**
 * The environment virt-cat and guestmount run with, the appliance built once.
 * Throws (the caller reports the baseline as missing) when it cannot be done.
 */
export async function prepareLibguestfs(root: string, work: string): Promise<LibguestfsEnv> {
  const env: Record<string, string> = { LIBGUESTFS_BACKEND: 'direct', LIBGUESTFS_CACHEDIR: join(work, 'guestfs-cache') };
  mkdirSync(env['LIBGUESTFS_CACHEDIR']!, { recursive: true });
  let kernel = 'the host kernel';
  let withModulesFolder = (command: string[]) => command;
  if (!existsSync('/lib/modules') || readdirSync('/lib/modules').length === 0) {
    const found = payloadKernel(root);
    const modulesRoot = join(work, 'kernel');
    mkdirSync(join(modulesRoot, 'lib', 'modules'), { recursive: true });
    const copy = join(modulesRoot, 'lib', 'modules', found.version);
    // Hard links where the folders share a file system, else a copy; depmod then adds its own new files.
    const linked = await execa('cp', ['-al', found.modules, copy], { reject: false });
    if (linked.exitCode !== 0) await execa('cp', ['-a', found.modules, copy]);
    await execa('depmod', ['-b', modulesRoot, found.version]);
    Object.assign(env, { SUPERMIN_KERNEL: found.vmlinuz, SUPERMIN_MODULES: copy, SUPERMIN_KERNEL_VERSION: found.version });
    kernel = `${found.vmlinuz} (${found.version}, from .cache/payload)`;
    if (!existsSync('/lib/modules')) {
      const lib = realpathSync('/lib');
      const upper = join(work, 'lib-overlay', 'upper');
      const scratch = join(work, 'lib-overlay', 'work');
      mkdirSync(join(upper, 'modules'), { recursive: true });
      mkdirSync(scratch, { recursive: true });
      const mount = `mount -t overlay overlay -o lowerdir=${lib},upperdir=${upper},workdir=${scratch} ${lib}`;
      withModulesFolder = (command) => ['unshare', '-m', 'sh', '-c', `${mount} && exec "$@"`, 'sh', ...command];
    }
  }
  // One throwaway run builds and caches supermin's appliance (a `guestfish run` on no disk).
  const started = performance.now();
  const [command, ...args] = withModulesFolder(['guestfish', '-a', '/dev/null', 'run']);
  const built = await execa(command!, args, { reject: false, env, timeout: 900_000 });
  if (built.exitCode !== 0) throw new Error(`libguestfs could not build or start its appliance: ${String(built.stderr).split('\n').at(-1) ?? ''}`);
  return { env, kernel, applianceBuildSeconds: (performance.now() - started) / 1000, wrap: withModulesFolder };
}
