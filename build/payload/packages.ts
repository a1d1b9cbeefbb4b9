// Decides which exact Debian packages the payload is built from: the locked
// version while apt can still supply it, otherwise apt's candidate (with a
// warning, and the lock is rewritten). A locked version whose archive
// checksum changed is never accepted. apt is asked in batches: every
// apt-cache call re-reads the package lists.
import { archiveRecords, candidateVersions, directDependencies, resolveMetapackage, type AptRecord } from './apt.ts';
import { PayloadBuildError } from './errors.ts';
import type { LockedPackage, PayloadLock } from './lockfile.ts';
import type { PayloadRecipe } from './recipe.ts';

export type PackageRole = LockedPackage['role'];

export interface PlannedPackage {
  record: AptRecord;
  role: PackageRole;
}

const updateHint = 'run `apt-get update` and retry';

/** Candidate records for names; names without an installable candidate are left out. */
async function candidateRecords(names: string[]): Promise<Map<string, AptRecord>> {
  const versions = await candidateVersions(names);
  const specs = names.flatMap((name) => {
    const version = versions.get(name);
    return version ? [{ name, version }] : [];
  });
  const records = await archiveRecords(specs);
  return new Map(specs.flatMap((s) => {
    const record = records.get(`${s.name}=${s.version}`);
    return record ? [[s.name, record] as const] : [];
  }));
}

export function checkLockedChecksum(locked: LockedPackage, record: AptRecord): void {
  if (record.sha256 !== locked.sha256 || record.size !== locked.size) {
    throw new PayloadBuildError(
      `sha256 mismatch for ${locked.name}=${locked.version}: the lock says ${locked.sha256}, the archive index says ${record.sha256}`,
      { hint: 'the same version now has different bytes; find out why before building (a mirror or proxy problem?)' },
    );
  }
}

export async function planPackages(recipe: PayloadRecipe, lock: PayloadLock | undefined, warn: (line: string) => void): Promise<PlannedPackage[]> {
  const recipeNames = recipe.packages.map((p) => p.name);
  // Headers follow the kernel and are planned with it (guest-modules.ts).
  const locked = (lock?.packages ?? []).filter((p) => p.role !== 'headers' && (p.role !== 'recipe' || recipeNames.includes(p.name)));
  const lockedKernel = locked.find((p) => p.role === 'kernel');
  const available = await archiveRecords(locked);

  const planned: PlannedPackage[] = [];
  const replace: Array<{ name: string; role: PackageRole; previous?: LockedPackage }> = [];
  for (const entry of locked) {
    const record = available.get(`${entry.name}=${entry.version}`);
    if (record) {
      checkLockedChecksum(entry, record);
      planned.push({ record, role: entry.role });
    } else if (entry.role !== 'kernel') {
      replace.push({ name: entry.name, role: entry.role, previous: entry });
    }
  }
  for (const name of recipeNames) {
    if (!locked.some((p) => p.name === name)) replace.push({ name, role: 'recipe' });
  }

  // Debian replaces kernels under a new package name (a new ABI number), so
  // a kernel that is gone is looked up again through the metapackage.
  let kernelName: string | undefined;
  if (!planned.some((p) => p.role === 'kernel')) {
    kernelName = await resolveMetapackage(recipe.kernel.metapackage, recipe.kernel.concretePrefix);
    replace.push({ name: kernelName, role: 'kernel', ...(lockedKernel ? { previous: lockedKernel } : {}) });
  }

  const candidates = await candidateRecords(replace.map((r) => r.name));
  for (const wanted of replace) {
    const record = candidates.get(wanted.name);
    if (!record) {
      if (wanted.role === 'library') {
        warn(`${wanted.name} is in the lock but apt no longer has it; dropping it (its libraries are looked up again)`);
        continue;
      }
      throw new PayloadBuildError(`apt has no downloadable version of ${wanted.name}`, { hint: updateHint });
    }
    if (wanted.previous) {
      warn(`${wanted.previous.name}=${wanted.previous.version} is no longer available from apt; using ${record.name}=${record.version} and updating the lock`);
    }
    planned.push({ record, role: wanted.role });
  }
  return planned;
}

/**
 * The next packages to try when sonames are missing: the candidates of the
 * direct Depends/Pre-Depends of the packages that contribute files, minus
 * those already considered. Packages that turn out to ship nothing needed are
 * never expanded further, which keeps perl-base & co. out.
 */
export async function nextLibraryCandidates(contributing: string[], considered: Set<string>, expanded: Set<string>): Promise<AptRecord[]> {
  const toExpand = contributing.filter((name) => !expanded.has(name));
  for (const name of toExpand) expanded.add(name);
  const frontier: string[] = [];
  for (const deps of (await directDependencies(toExpand)).values()) {
    for (const dep of deps) if (!considered.has(dep) && !frontier.includes(dep)) frontier.push(dep);
  }
  for (const name of frontier) considered.add(name);
  return [...(await candidateRecords(frontier)).values()];
}
