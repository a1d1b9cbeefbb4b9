// The shared-library closure of the guest's dynamic binaries: every DT_NEEDED
// soname, recursively, plus the program interpreter, found in the unpacked
// Debian packages (never on the build host). What cannot be found is
// reported, so the caller can fetch the packages that provide it.
import { readdir, readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { ElfFormatError, isElf, readElfDynamic } from './elf-needed.ts';
import { PayloadBuildError } from './errors.ts';
import { resolveInTree } from './tree-path.ts';

export interface PackageTree {
  name: string;
  tree: string;
}

export interface PayloadFile {
  /** Path inside the initramfs, without a leading slash. */
  archivePath: string;
  /** Absolute path of the file's bytes on the build machine. */
  source: string;
  /** Package that provides it. */
  provider: string;
  mode: number;
}

export interface LibraryClosure {
  files: PayloadFile[];
  /** Extra symlinks, e.g. lib64/ld-linux-x86-64.so.2 -> the loader. */
  links: Array<{ archivePath: string; target: string }>;
  /** Sonames no tree provides, with one binary that needs each. */
  missing: Map<string, string>;
  /** Names of the packages that contributed at least one library. */
  providers: Set<string>;
}

interface SonameHit {
  pkg: PackageTree;
  dir: string;
}

/** soname -> first tree (in the given order) that has it in one of the library directories. */
async function indexSonames(trees: PackageTree[], libraryDirectories: string[]): Promise<Map<string, SonameHit>> {
  const index = new Map<string, SonameHit>();
  for (const pkg of trees) {
    for (const dir of libraryDirectories) {
      let names: string[];
      try {
        names = await readdir(posix.join(pkg.tree, dir));
      } catch {
        continue;
      }
      for (const name of names.sort()) {
        if (/\.so(\.\d+)*$/.test(name) && !index.has(name)) index.set(name, { pkg, dir });
      }
    }
  }
  return index;
}

export async function libraryClosure(
  binaries: PayloadFile[],
  trees: PackageTree[],
  libraryDirectories: string[],
): Promise<LibraryClosure> {
  const index = await indexSonames(trees, libraryDirectories);
  const result: LibraryClosure = { files: [], links: [], missing: new Map(), providers: new Set() };
  const placed = new Set<string>();
  const queue = [...binaries];
  const seenSonames = new Set<string>();

  const addLibrary = async (soname: string, neededBy: string) => {
    if (seenSonames.has(soname)) return;
    seenSonames.add(soname);
    const hit = index.get(soname);
    const real = hit ? await resolveInTree(hit.pkg.tree, posix.join(hit.dir, soname)) : undefined;
    if (!hit || !real) {
      result.missing.set(soname, neededBy);
      return;
    }
    // Stored under its soname (the name the loader looks for), not under the
    // versioned file name, so the initramfs needs no symlink per library.
    const file: PayloadFile = { archivePath: posix.join(hit.dir, soname), source: posix.join(hit.pkg.tree, real), provider: hit.pkg.name, mode: 0o755 };
    result.providers.add(hit.pkg.name);
    if (!placed.has(file.archivePath)) {
      placed.add(file.archivePath);
      result.files.push(file);
      queue.push(file);
    }
  };

  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    const bytes = await readFile(file.source);
    if (!isElf(bytes)) continue;
    let info;
    try {
      info = readElfDynamic(bytes);
    } catch (error) {
      if (error instanceof ElfFormatError) {
        throw new PayloadBuildError(`cannot read ${file.archivePath} from ${file.provider}: ${error.message}`, { hint: 'delete .cache/payload and retry' });
      }
      throw error;
    }
    if (info.interpreter) {
      const interp = info.interpreter.replace(/^\/+/, '');
      const soname = posix.basename(interp);
      await addLibrary(soname, file.archivePath);
      const loader = result.files.find((f) => posix.basename(f.archivePath) === soname);
      if (loader && loader.archivePath !== interp && !result.links.some((l) => l.archivePath === interp)) {
        result.links.push({ archivePath: interp, target: `/${loader.archivePath}` });
      }
    }
    for (const soname of info.needed) await addLibrary(soname, file.archivePath);
  }
  return result;
}
