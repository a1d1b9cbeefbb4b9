// `node build.js payload`: kernel + initramfs for a guest, from Debian
// packages pinned in payload/payload.lock.json. The steps live in
// build/payload/*; this file only puts them in order.
import { lstat, readdir, rm } from 'node:fs/promises';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CpioEntry } from './payload/cpio.ts';
import { copyFileAtomic, writeFileAtomic } from './payload/atomic.ts';
import { fetchPackages, type FetchedPackage } from './payload/debs.ts';
import { buildGuestHelpers } from './payload/guest-helpers.ts';
import { buildGuestModules, planHeaders } from './payload/guest-modules.ts';
import { asPayloadBuildError, PayloadBuildError } from './payload/errors.ts';
import { sha256, sha256File } from './payload/hash.ts';
import { baseEntries, buildInitramfs, busyboxAppletLinks, payloadFileEntries, rootfsEntries } from './payload/initramfs.ts';
import { modulesDep, planModules, readModuleFile, type ModulePlan } from './payload/kernel-modules.ts';
import { libraryClosure, type LibraryClosure, type PayloadFile } from './payload/libraries.ts';
import { readLock, sameLock, writeLock, type PayloadLock } from './payload/lockfile.ts';
import { nextLibraryCandidates, planPackages, type PackageRole } from './payload/packages.ts';
import { lineRenderer, type PayloadProgressEvent, type PayloadProgressListener } from './payload/progress.ts';
import { readRecipe, type PayloadRecipe } from './payload/recipe.ts';
import { hashInputs, readStamp, stampIsCurrent, writeStamp } from './payload/stamp.ts';
import { resolveInTree } from './payload/tree-path.ts';

export { PayloadBuildError } from './payload/errors.ts';
export type { PayloadProgressEvent } from './payload/progress.ts';

export interface PayloadBuildOptions {
  /** The repository (or stick) root holding payload/ and .cache/. */
  root: string;
  guest?: string;
  force?: boolean;
  onProgress?: (e: PayloadProgressEvent) => void;
}

export interface PayloadBuildResult {
  guest: string;
  dir: string;
  kernelVersion: string;
  kernel: string;
  initrd: string;
  cached: boolean;
  seconds: number;
  initrdBytes: number;
  /** Warnings also sent as progress events (step "warning"), e.g. a re-locked kernel. */
  warnings: string[];
}

const OUTPUT_KERNEL = 'vmlinuz';
const OUTPUT_INITRD = 'initrd.img';

interface PayloadPaths {
  recipe: string;
  lock: string;
  rootfs: string;
  /** A second guest's own files, laid over payload/rootfs (missing for the default guest). */
  rootfsOverlay?: string;
  /** Sources of the modules the payload compiles itself. */
  kmod: string;
  /** Where they are compiled. */
  kmodWork: string;
  /** Sources of the guest helper programs (payload/helpers/*.c), and where they are compiled. */
  helpers: string;
  helpersWork: string;
  dir: string;
  stamp: string;
  debs: string;
}

/**
 * The default guest's recipe is payload/recipe.json; any other guest's is
 * payload/<guest>.recipe.json with its own lock, and payload/<guest>-rootfs
 * laid over the default rootfs (the helper appliance, docs/files.md).
 */
function payloadPaths(root: string, guest: string): PayloadPaths {
  const own = guest !== 'default';
  return {
    recipe: posix.join(root, 'payload', own ? `${guest}.recipe.json` : 'recipe.json'),
    lock: posix.join(root, 'payload', own ? `${guest}.lock.json` : 'payload.lock.json'),
    rootfs: posix.join(root, 'payload', 'rootfs'),
    ...(own ? { rootfsOverlay: posix.join(root, 'payload', `${guest}-rootfs`) } : {}),
    kmod: posix.join(root, 'payload', 'kmod'),
    kmodWork: posix.join(root, '.cache', 'payload', 'kmod-build'),
    helpers: posix.join(root, 'payload', 'helpers'),
    helpersWork: posix.join(root, '.cache', 'payload', 'helpers-build'),
    dir: posix.join(root, 'payload', guest),
    stamp: posix.join(root, 'payload', guest, 'payload.stamp.json'),
    debs: posix.join(root, '.cache', 'payload', 'debs'),
  };
}

/** The builder's own source is an input too: a changed builder must rebuild. */
async function builderSources(): Promise<Array<{ label: string; path: string }>> {
  const self = fileURLToPath(import.meta.url);
  const dir = posix.join(posix.dirname(self), 'payload');
  const names = (await readdir(dir)).filter((n) => n.endsWith('.ts')).sort();
  return [{ label: 'build/payload.ts', path: self }, ...names.map((n) => ({ label: `build/payload/${n}`, path: posix.join(dir, n) }))];
}

async function currentInputs(paths: PayloadPaths): Promise<string> {
  return hashInputs(
    [{ label: 'recipe', path: paths.recipe }, { label: 'lock', path: paths.lock }, ...(await builderSources())],
    [
      { label: 'rootfs', dir: paths.rootfs },
      ...(paths.rootfsOverlay ? [{ label: 'rootfs-overlay', dir: paths.rootfsOverlay }] : []),
      { label: 'kmod', dir: paths.kmod },
      { label: 'helpers', dir: paths.helpers },
    ],
  );
}

export async function buildPayload(options: PayloadBuildOptions): Promise<PayloadBuildResult> {
  const started = performance.now();
  const guest = options.guest ?? 'default';
  const onProgress = options.onProgress ?? lineRenderer();
  const paths = payloadPaths(options.root, guest);
  const warnings: string[] = [];
  const warn = (message: string) => {
    warnings.push(message);
    onProgress({ step: 'warning', message });
  };
  try {
    const recipe = await readRecipe(paths.recipe);
    if (recipe.guest !== guest) {
      throw new PayloadBuildError(`no recipe for guest "${guest}" (${posix.basename(paths.recipe)} builds "${recipe.guest}")`, {
        hint: `use --guest ${recipe.guest}`,
      });
    }
    const stamp = await readStamp(paths.stamp);
    if (!options.force && (await stampIsCurrent(stamp, await currentInputs(paths), paths.dir)) && stamp) {
      onProgress({ step: 'cached', message: `payload/${guest} is up to date (kernel ${stamp.kernelVersion})` });
      return result(paths, guest, stamp.kernelVersion, stamp.initrdBytes, true, started, warnings);
    }
    // Outputs are about to change: a build interrupted from here on must not look cached.
    await rm(paths.stamp, { force: true });

    const built = await buildFromScratch(recipe, paths, onProgress, warn);
    const lockChanged = !sameLock(await readLock(paths.lock), built.lock);
    if (lockChanged) await writeLock(paths.lock, built.lock);

    const kernelSha = await sha256File(posix.join(paths.dir, OUTPUT_KERNEL));
    const initrdSha = sha256(built.initrd);
    await writeStamp(paths.stamp, {
      stampVersion: 1,
      inputs: await currentInputs(paths),
      kernelVersion: built.kernelVersion,
      initrdBytes: built.initrd.length,
      outputs: { [OUTPUT_KERNEL]: kernelSha, [OUTPUT_INITRD]: initrdSha },
    });
    onProgress({
      step: 'done',
      message: `payload/${guest}: kernel ${built.kernelVersion}, initrd ${(built.initrd.length / 1e6).toFixed(1)} MB${lockChanged ? ', lock updated' : ''}`,
    });
    return result(paths, guest, built.kernelVersion, built.initrd.length, false, started, warnings);
  } catch (error) {
    throw asPayloadBuildError(error, options.root);
  }
}

function result(
  paths: PayloadPaths,
  guest: string,
  kernelVersion: string,
  initrdBytes: number,
  cached: boolean,
  started: number,
  warnings: string[],
): PayloadBuildResult {
  return {
    guest,
    dir: paths.dir,
    kernelVersion,
    kernel: posix.join(paths.dir, OUTPUT_KERNEL),
    initrd: posix.join(paths.dir, OUTPUT_INITRD),
    cached,
    seconds: (performance.now() - started) / 1000,
    initrdBytes,
    warnings,
  };
}

interface BuiltPayload {
  lock: PayloadLock;
  kernelVersion: string;
  initrd: Buffer;
}

async function buildFromScratch(
  recipe: PayloadRecipe,
  paths: PayloadPaths,
  onProgress: PayloadProgressListener,
  warn: (line: string) => void,
): Promise<BuiltPayload> {
  onProgress({ step: 'resolve', message: 'choosing package versions (lock, else apt candidate)' });
  const previousLock = await readLock(paths.lock);
  const planned = await planPackages(recipe, previousLock, warn);
  const roles = new Map<string, PackageRole>(planned.map((p) => [p.record.name, p.role]));
  const fetched = await fetchPackages(
    planned.map((p) => p.record),
    paths.debs,
    onProgress,
  );

  const kernelPkg = fetched.find((f) => roles.get(f.record.name) === 'kernel');
  if (!kernelPkg) throw new PayloadBuildError('internal: no kernel package planned');
  const recipeFiles = await collectRecipeFiles(recipe, fetched);
  const closure = await resolveLibraries(recipe, recipeFiles, fetched, roles, paths, onProgress);

  const kernelVersion = await kernelVersionOf(kernelPkg);
  const moduleSources = recipe.moduleSources ?? [];
  let headers: FetchedPackage[] = [];
  if (moduleSources.length > 0) {
    onProgress({ step: 'headers', message: `kernel headers for ${kernelVersion} (to compile ${moduleSources.map((m) => m.name).join(', ')})` });
    headers = await fetchPackages(await planHeaders(kernelPkg.record, previousLock?.packages ?? [], warn), paths.debs, onProgress);
  }
  const ownModules = await buildGuestModules(moduleSources, headers, posix.dirname(paths.kmod), posix.join(paths.kmodWork, kernelVersion), onProgress);
  onProgress({ step: 'modules', message: `resolving module dependencies for ${kernelVersion}` });
  const modules = await planModules(posix.join(kernelPkg.tree, 'lib', 'modules', kernelVersion), kernelVersion, recipe.moduleGroups, ownModules);
  onProgress({
    step: 'modules',
    message: `${modules.modules.length} modules, built in: ${modules.builtin.join(' ') || 'none'}`,
    done: modules.modules.length,
    total: modules.modules.length,
  });

  const busybox = recipeFiles.find((f) => posix.basename(f.archivePath) === 'busybox');
  if (!busybox) throw new PayloadBuildError('the recipe must ship bin/busybox: init is a busybox script');
  const used = new Set([kernelPkg.record.name, ...recipe.packages.map((p) => p.name), ...closure.providers]);
  const lock: PayloadLock = {
    lockVersion: 1,
    guest: recipe.guest,
    packages: fetched
      .filter((f) => used.has(f.record.name))
      .map((f) => ({ ...f.record, role: roles.get(f.record.name) ?? 'library' }))
      .concat(headers.map((h) => ({ ...h.record, role: 'headers' as const }))),
  };

  const helpers = await buildGuestHelpers(paths.helpers, paths.helpersWork, onProgress);
  const initrd = await buildInitramfs(
    [
      baseEntries(),
      busyboxAppletLinks(busybox.source, busybox.archivePath),
      await moduleEntries(modules),
      await payloadFileEntries(closure.files),
      closure.links.map((l) => ({ type: 'symlink', path: l.archivePath, target: l.target }) as const),
      await payloadFileEntries(recipeFiles),
      buildInfoEntries(recipe, lock, kernelVersion),
      helpers,
      await rootfsEntries(paths.rootfs),
      paths.rootfsOverlay ? await rootfsEntries(paths.rootfsOverlay) : [],
    ],
    onProgress,
  );

  onProgress({ step: 'write', message: `writing payload/${recipe.guest}` });
  const vmlinuz = posix.join(kernelPkg.tree, 'boot', `vmlinuz-${kernelVersion}`);
  await copyFileAtomic(vmlinuz, posix.join(paths.dir, OUTPUT_KERNEL));
  await writeFileAtomic(posix.join(paths.dir, OUTPUT_INITRD), initrd);
  const sums = `${await sha256File(posix.join(paths.dir, OUTPUT_KERNEL))}  ${OUTPUT_KERNEL}\n${sha256(initrd)}  ${OUTPUT_INITRD}\n`;
  await writeFileAtomic(posix.join(paths.dir, 'SHA256SUMS'), sums);
  return { lock, kernelVersion, initrd };
}

async function kernelVersionOf(kernel: FetchedPackage): Promise<string> {
  const versions = await readdir(posix.join(kernel.tree, 'lib', 'modules')).catch(() => []);
  const [version, ...others] = versions;
  if (!version || others.length > 0) throw new PayloadBuildError(`${kernel.record.filename} does not hold exactly one kernel (found ${versions.length})`);
  await lstat(posix.join(kernel.tree, 'boot', `vmlinuz-${version}`)).catch((cause: unknown) => {
    throw new PayloadBuildError(`${kernel.record.filename} has no boot/vmlinuz-${version}`, { cause });
  });
  return version;
}

async function collectRecipeFiles(recipe: PayloadRecipe, fetched: FetchedPackage[]): Promise<PayloadFile[]> {
  const files: PayloadFile[] = [];
  for (const spec of recipe.packages) {
    const pkg = fetched.find((f) => f.record.name === spec.name);
    if (!pkg) throw new PayloadBuildError(`internal: ${spec.name} was not fetched`);
    for (const path of spec.files) {
      const real = await resolveInTree(pkg.tree, path);
      if (!real) throw new PayloadBuildError(`${spec.name} ${pkg.record.version} has no ${path}`, { hint: 'fix the files list in payload/recipe.json' });
      const info = await lstat(posix.join(pkg.tree, real));
      files.push({ archivePath: path, source: posix.join(pkg.tree, real), provider: spec.name, mode: info.mode & 0o111 ? 0o755 : 0o644 });
    }
  }
  return files;
}

/** Completes the shared-library closure, fetching dependency packages until nothing is missing. */
async function resolveLibraries(
  recipe: PayloadRecipe,
  binaries: PayloadFile[],
  fetched: FetchedPackage[],
  roles: Map<string, PackageRole>,
  paths: PayloadPaths,
  onProgress: PayloadProgressListener,
): Promise<LibraryClosure> {
  const considered = new Set(fetched.map((f) => f.record.name));
  const expanded = new Set<string>();
  for (;;) {
    // Recipe packages first, so their own libraries win over a same-named copy elsewhere.
    const trees = fetched
      .filter((f) => roles.get(f.record.name) !== 'kernel')
      .sort((a, b) => Number(roles.get(a.record.name) !== 'recipe') - Number(roles.get(b.record.name) !== 'recipe'))
      .map((f) => ({ name: f.record.name, tree: f.tree }));
    const closure = await libraryClosure(binaries, trees, recipe.libraryDirectories);
    onProgress({ step: 'libraries', message: `${closure.files.length} libraries found, ${closure.missing.size} missing` });
    if (closure.missing.size === 0) return closure;

    const contributing = [...recipe.packages.map((p) => p.name), ...closure.providers];
    const next = await nextLibraryCandidates(contributing, considered, expanded);
    if (next.length === 0) {
      const [soname, neededBy] = [...closure.missing][0] ?? ['?', '?'];
      throw new PayloadBuildError(`no Debian package in reach provides ${soname} (needed by ${neededBy})`, {
        hint: 'add the package that ships it to payload/recipe.json, or run `apt-get update` and retry',
      });
    }
    onProgress({ step: 'libraries', message: `looking for ${[...closure.missing.keys()].join(' ')} in ${next.map((r) => r.name).join(' ')}` });
    for (const record of next) roles.set(record.name, 'library');
    fetched.push(...(await fetchPackages(next, paths.debs, onProgress)));
  }
}

async function moduleEntries(plan: ModulePlan): Promise<CpioEntry[]> {
  const base = `lib/modules/${plan.kernelVersion}`;
  const entries: CpioEntry[] = [];
  for (const module of plan.modules) {
    entries.push({ type: 'file', path: `${base}/${module.path}`, mode: 0o644, data: await readModuleFile(module.source) });
  }
  entries.push({ type: 'file', path: `${base}/modules.dep`, mode: 0o644, data: Buffer.from(modulesDep(plan.modules)) });
  // One list per group, in load order, read by init's load_modules.
  for (const [group, modules] of plan.groups) {
    const lines = modules.map((m) => `${m.name} /${base}/${m.path}\n`).join('');
    entries.push({ type: 'file', path: `etc/pocketvm/modules/${group}`, mode: 0o644, data: Buffer.from(lines) });
  }
  return entries;
}

/** What this payload was built from, readable inside the guest. */
function buildInfoEntries(recipe: PayloadRecipe, lock: PayloadLock, kernelVersion: string): CpioEntry[] {
  const info = {
    guest: recipe.guest,
    kernelVersion,
    packages: Object.fromEntries([...lock.packages].sort((a, b) => (a.name < b.name ? -1 : 1)).map((p) => [p.name, p.version])),
  };
  return [{ type: 'file', path: 'etc/pocketvm/payload.json', mode: 0o644, data: Buffer.from(`${JSON.stringify(info, null, 2)}\n`) }];
}
