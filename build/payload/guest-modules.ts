// Kernel modules the payload compiles itself (payload/kmod/<name>/, listed
// under moduleSources in the recipe), against the Debian kernel headers of
// exactly the kernel it ships: linux-headers-<abi>-amd64 at the kernel's
// version, and what that package depends on (-common, linux-kbuild-<x.y>).
// The headers are fetched and unpacked like every other package, recorded in
// the lock with role "headers", and never enter the initramfs.
//
// Debian's headers expect to live under /usr: the arch package's Makefile
// includes /usr/src/linux-headers-<abi>-common/Makefile by absolute path and
// reaches kbuild's scripts through ../../lib/linux-kbuild-<x.y>. So the
// build assembles that layout in a work folder of its own (the arch package
// copied, its Makefile pointed at the work folder; -common and kbuild linked)
// and runs `make M=<module>` there, with the compiler the kernel was built
// with (gcc-12 for bookworm). Nothing is installed on the build machine.
import { cp, mkdir, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { archiveRecords, candidateVersions, directDependencies, type AptRecord } from './apt.ts';
import type { FetchedPackage } from './debs.ts';
import { PayloadBuildError } from './errors.ts';
import type { LockedPackage } from './lockfile.ts';
import { checkLockedChecksum } from './packages.ts';
import type { PayloadProgressListener } from './progress.ts';
import { CommandError, runCommand } from './run.ts';

export interface ModuleSource {
  /** Module name (the .ko's base name). */
  name: string;
  /** Its Kbuild source folder, relative to payload/. */
  dir: string;
}

export interface BuiltModule {
  name: string;
  /** Where it goes under lib/modules/<version>/. */
  path: string;
  /** The stripped .ko on the build machine. */
  source: string;
}

const updateHint = 'run `apt-get update` and retry';

/**
 * The header packages for `kernel`: the locked ones while apt still has
 * them and they match the kernel, otherwise resolved anew (with a warning).
 */
export async function planHeaders(kernel: AptRecord, locked: LockedPackage[], warn: (line: string) => void): Promise<AptRecord[]> {
  const archName = kernel.name.replace(/^linux-image-/, 'linux-headers-');
  if (archName === kernel.name) throw new PayloadBuildError(`cannot tell the headers package of ${kernel.name}`);
  const previous = locked.filter((p) => p.role === 'headers');
  const lockedArch = previous.find((p) => p.name === archName && p.version === kernel.version);
  if (lockedArch) {
    const available = await archiveRecords(previous);
    if (previous.every((p) => available.has(`${p.name}=${p.version}`))) {
      return previous.map((p) => {
        const record = available.get(`${p.name}=${p.version}`)!;
        checkLockedChecksum(p, record);
        return record;
      });
    }
  }
  if (previous.length > 0) warn(`the locked kernel headers do not match ${kernel.name}=${kernel.version} any more; resolving them again and updating the lock`);

  // The arch package's version is the kernel's own; -common must equal it, kbuild is the candidate.
  const deps = ((await directDependencies([archName])).get(archName) ?? []).filter((d) => d.startsWith('linux-headers-') || d.startsWith('linux-kbuild-'));
  const common = deps.filter((d) => d.startsWith('linux-headers-'));
  const kbuild = deps.filter((d) => d.startsWith('linux-kbuild-'));
  if (common.length !== 1 || kbuild.length !== 1) {
    throw new PayloadBuildError(`apt cannot tell what ${archName} depends on (found ${deps.join(', ') || 'nothing'})`, { hint: updateHint });
  }
  const kbuildVersion = (await candidateVersions(kbuild)).get(kbuild[0]!);
  const specs = [
    { name: archName, version: kernel.version },
    { name: common[0]!, version: kernel.version },
    ...(kbuildVersion ? [{ name: kbuild[0]!, version: kbuildVersion }] : []),
  ];
  const records = await archiveRecords(specs);
  const missing = specs.filter((s) => !records.has(`${s.name}=${s.version}`));
  if (missing.length > 0) {
    throw new PayloadBuildError(`apt has no ${missing.map((s) => `${s.name}=${s.version}`).join(', ')}: the guest modules cannot be compiled for ${kernel.name}`, {
      hint: updateHint,
    });
  }
  return specs.map((s) => records.get(`${s.name}=${s.version}`)!);
}

async function onlyEntry(dir: string, prefix: string, what: string): Promise<string> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith(prefix));
  if (names.length !== 1) throw new PayloadBuildError(`${what}: expected one ${prefix}* in ${dir}, found ${names.length}`);
  return names[0]!;
}

/**
 * Recreates `from` at `to` without copying: each top-level entry links to
 * the original, except relative symlinks (scripts -> ../../lib/linux-kbuild-*),
 * which are recreated as they are so they resolve inside `to`'s layout.
 */
async function mirror(from: string, to: string, skip: string[] = []): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const entry of await readdir(from, { withFileTypes: true })) {
    if (skip.includes(entry.name)) continue;
    const source = posix.join(from, entry.name);
    const target = entry.isSymbolicLink() ? await readlink(source) : source;
    await symlink(target, posix.join(to, entry.name));
  }
}

/** Lays out /usr/src and /usr/lib under `work` as the headers expect; returns the arch headers folder. */
async function assembleHeaders(headers: FetchedPackage[], work: string): Promise<string> {
  const kbuild = headers.find((h) => h.record.name.startsWith('linux-kbuild-'));
  const common = headers.find((h) => h.record.name.startsWith('linux-headers-') && h.record.name.endsWith('-common'));
  const arch = headers.find((h) => h.record.name.startsWith('linux-headers-') && !h.record.name.endsWith('-common'));
  if (!kbuild || !common || !arch) throw new PayloadBuildError('internal: the headers need an arch, a -common and a kbuild package');

  const commonName = await onlyEntry(posix.join(common.tree, 'usr', 'src'), 'linux-headers-', common.record.filename);
  const archName = await onlyEntry(posix.join(arch.tree, 'usr', 'src'), 'linux-headers-', arch.record.filename);
  const kbuildName = await onlyEntry(posix.join(kbuild.tree, 'usr', 'lib'), 'linux-kbuild-', kbuild.record.filename);
  const src = posix.join(work, 'usr', 'src');
  await mkdir(src, { recursive: true });
  await mkdir(posix.join(work, 'usr', 'lib'), { recursive: true });
  await symlink(posix.join(kbuild.tree, 'usr', 'lib', kbuildName), posix.join(work, 'usr', 'lib', kbuildName));
  await mirror(posix.join(common.tree, 'usr', 'src', commonName), posix.join(src, commonName));
  const archDir = posix.join(src, archName);
  const archSource = posix.join(arch.tree, 'usr', 'src', archName);
  await mirror(archSource, archDir, ['Makefile']);
  const text = await readFile(posix.join(archSource, 'Makefile'), 'utf8');
  if (!text.includes('/usr/src/')) throw new PayloadBuildError(`${arch.record.filename}: its Makefile does not include /usr/src/... as expected`);
  await writeFile(posix.join(archDir, 'Makefile'), text.replaceAll('/usr/src/', `${src}/`));
  return archDir;
}

async function make(args: string[], what: string): Promise<void> {
  try {
    await runCommand('make', args, { env: { KBUILD_VERBOSE: '0', DEBIAN_KERNEL_USE_CCACHE: '' } });
  } catch (error) {
    if (error instanceof CommandError && error.notFound) {
      throw new PayloadBuildError('make not found: the guest modules are compiled against the kernel headers', { hint: 'install make and gcc-12 (apt-get install make gcc-12)', cause: error });
    }
    const stderr = error instanceof CommandError ? (error.result?.stderr ?? '') + (error.result?.stdout ?? '') : '';
    if (/gcc-12: (?:not found|No such file)|gcc-12: command not found/.test(stderr)) {
      throw new PayloadBuildError(`compiling ${what} needs gcc-12, the compiler Debian built the kernel with`, { hint: 'apt-get install gcc-12', cause: error });
    }
    const firstError = stderr.split('\n').find((l) => /error/i.test(l)) ?? stderr.trim().split('\n').at(-1) ?? '';
    throw new PayloadBuildError(`compiling ${what} failed: ${firstError.trim()}`, { hint: 'fix the module source under payload/kmod/', cause: error, details: { output: stderr } });
  }
}

/** Compiles every module of the recipe; the .ko files land, stripped, under `work`/out. */
export async function buildGuestModules(
  sources: ModuleSource[],
  headers: FetchedPackage[],
  payloadDir: string,
  work: string,
  onProgress: PayloadProgressListener,
): Promise<BuiltModule[]> {
  if (sources.length === 0) return [];
  await rm(work, { recursive: true, force: true });
  const archDir = await assembleHeaders(headers, work);
  const built: BuiltModule[] = [];
  let done = 0;
  for (const source of sources) {
    onProgress({ step: 'compile', message: `${source.name} against ${posix.basename(archDir)}`, done, total: sources.length });
    const dir = posix.join(work, 'modules', source.name);
    await cp(posix.join(payloadDir, source.dir), dir, { recursive: true });
    await make(['-C', archDir, `M=${dir}`, 'modules'], source.name);
    const out = posix.join(work, 'out', `${source.name}.ko`);
    await mkdir(posix.dirname(out), { recursive: true });
    // Debug info is most of the file and no use in the guest.
    try {
      await runCommand('objcopy', ['--strip-debug', posix.join(dir, `${source.name}.ko`), out]);
    } catch (error) {
      throw new PayloadBuildError(`objcopy could not strip ${source.name}.ko`, { hint: 'install binutils', cause: error });
    }
    built.push({ name: source.name, path: `extra/${source.name}.ko`, source: out });
    onProgress({ step: 'compile', message: source.name, done: ++done, total: sources.length });
  }
  return built;
}
