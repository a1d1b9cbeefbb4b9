// The .deb cache under .cache/payload/debs: each verified .deb, and beside it
// the tree dpkg-deb unpacked from it. A tree counts as unpacked only once its
// marker (holding the .deb's sha256) exists, so an interrupted unpack is
// redone rather than trusted.
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { downloadPackages, type AptRecord } from './apt.ts';
import { PayloadBuildError } from './errors.ts';
import { sha256File } from './hash.ts';
import type { PayloadProgressListener } from './progress.ts';
import { CommandError, runCommand } from './run.ts';

export interface FetchedPackage {
  record: AptRecord;
  deb: string;
  /** The unpacked file-system tree of the package. */
  tree: string;
}

const MARKER = '.pocketvm-unpacked';

async function isVerified(path: string, record: AptRecord): Promise<boolean> {
  try {
    if ((await stat(path)).size !== record.size) return false;
  } catch {
    return false;
  }
  return (await sha256File(path)) === record.sha256;
}

/** apt-get download names files with the epoch's colon percent-encoded, unlike the pool filename. */
function aptDownloadName(record: AptRecord): string {
  return `${record.name}_${record.version.replace(/:/g, '%3a')}_${record.architecture}.deb`;
}

async function download(records: AptRecord[], debDir: string, onProgress: PayloadProgressListener): Promise<void> {
  const staging = join(debDir, `.download-${process.pid}`);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  try {
    const bytes = records.reduce((sum, r) => sum + r.size, 0);
    onProgress({ step: 'download', message: `fetching ${records.length} package(s), ${(bytes / 1e6).toFixed(1)} MB`, done: 0, total: records.length });
    await downloadPackages(records, staging);
    const present = new Set(await readdir(staging));
    let done = 0;
    for (const record of records) {
      const name = [aptDownloadName(record), record.filename].find((n) => present.has(n));
      if (!name) {
        throw new PayloadBuildError(`apt-get download did not produce ${record.filename}`, { hint: 'run `apt-get update` and retry' });
      }
      const actual = await sha256File(join(staging, name));
      if (actual !== record.sha256) {
        throw new PayloadBuildError(`sha256 mismatch for ${record.name}=${record.version}: expected ${record.sha256}, downloaded ${actual}`, {
          hint: 'the mirror or a proxy serves different bytes for the same version; do not build from it until that is explained',
        });
      }
      await rename(join(staging, name), join(debDir, record.filename));
      onProgress({ step: 'download', message: record.filename, done: ++done, total: records.length });
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function unpack(pkg: FetchedPackage): Promise<void> {
  try {
    if ((await readFile(join(pkg.tree, MARKER), 'utf8')) === pkg.record.sha256) return;
  } catch {
    // not unpacked yet
  }
  const staging = `${pkg.tree}.tmp-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await rm(pkg.tree, { recursive: true, force: true });
  try {
    await runCommand('dpkg-deb', ['-x', pkg.deb, staging]);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    if (error instanceof CommandError && error.notFound) {
      throw new PayloadBuildError('dpkg-deb not found: the payload is built from Debian packages', { hint: 'install dpkg (Debian/Ubuntu have it)', cause: error });
    }
    const stderr = error instanceof CommandError ? (error.result?.stderr ?? '') : '';
    if (/No space left/i.test(stderr)) throw new PayloadBuildError(`no space left on device while unpacking ${pkg.record.filename}`, { hint: 'free some space and retry' });
    throw new PayloadBuildError(`dpkg-deb could not unpack ${pkg.record.filename}`, { hint: 'delete .cache/payload and retry', cause: error });
  }
  await writeFile(join(staging, MARKER), pkg.record.sha256);
  await rename(staging, pkg.tree);
}

async function inBatches<T>(items: T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(Array.from({ length: Math.min(width, queue.length) }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
  }));
}

/** Makes every record present, verified and unpacked in the cache; downloads only what is missing or corrupt. */
export async function fetchPackages(records: AptRecord[], debDir: string, onProgress: PayloadProgressListener): Promise<FetchedPackage[]> {
  await mkdir(debDir, { recursive: true });
  const packages = records.map((record) => ({
    record,
    deb: join(debDir, record.filename),
    tree: join(debDir, record.filename.replace(/\.deb$/, '')),
  }));
  const verified = await Promise.all(packages.map((pkg) => isVerified(pkg.deb, pkg.record)));
  const missing = packages.filter((_, i) => !verified[i]).map((pkg) => pkg.record);
  if (missing.length > 0) await download(missing, debDir, onProgress);

  let done = 0;
  onProgress({ step: 'unpack', message: `unpacking ${packages.length} package(s)`, done: 0, total: packages.length });
  await inBatches(packages, 4, async (pkg) => {
    await unpack(pkg);
    onProgress({ step: 'unpack', message: pkg.record.filename, done: ++done, total: packages.length });
  });
  return packages;
}
