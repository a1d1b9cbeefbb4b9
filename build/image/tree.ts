// The file tree of an image guest's base, assembled in a work folder under
// .cache/image/<guest>/ in this order: a Debian system (mmdebstrap, its tar
// cached by the package list), the chosen parts of a payload's initramfs, the
// recipe's own rootfs/ files on top, then the recipe's hook.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { posix } from 'node:path';
import { createGunzip } from 'node:zlib';
import type { ImageProgressListener } from './progress.ts';
import type { ImageRecipe } from './recipe.ts';
import { runTool } from './tool.ts';

export interface TreeSources {
  /** images/<guest>/ */
  recipeDir: string;
  /** .cache/image/<guest>/ */
  cacheDir: string;
  /** The initramfs of the payload the image boots with. */
  payloadInitrd: string;
}

/** The mmdebstrap tarball, cached by what it is made of (suite, variant, components, packages). */
async function debianSystem(recipe: NonNullable<ImageRecipe['mmdebstrap']>, cacheDir: string, onProgress: ImageProgressListener): Promise<string> {
  const key = createHash('sha256').update(JSON.stringify(recipe)).digest('hex').slice(0, 16);
  const tar = posix.join(cacheDir, `mmdebstrap-${key}.tar`);
  if (existsSync(tar)) {
    onProgress({ step: 'debian', message: `the Debian system is cached (${posix.basename(tar)})` });
    return tar;
  }
  onProgress({ step: 'debian', message: `mmdebstrap ${recipe.suite} (${recipe.variant}, ${recipe.packages.length} packages) with this machine's apt sources` });
  const partial = `${tar}.partial`;
  await rm(partial, { force: true });
  const args = [`--variant=${recipe.variant}`, '--format=tar', '--skip=output/mknod'];
  if (recipe.components) args.push(`--components=${recipe.components.join(',')}`);
  if (recipe.packages.length > 0) args.push(`--include=${recipe.packages.join(',')}`);
  // No mirror argument: mmdebstrap then uses the machine's own apt sources.
  args.push(recipe.suite, partial);
  let lines = 0;
  await runTool('mmdebstrap', args, {
    onLine: (line) => {
      lines += 1;
      if (/^I: /.test(line)) onProgress({ step: 'debian', message: line.slice(3), done: lines });
    },
  });
  await rename(partial, tar);
  return tar;
}

export async function assembleTree(recipe: ImageRecipe, sources: TreeSources, tree: string, onProgress: ImageProgressListener): Promise<void> {
  await rm(tree, { recursive: true, force: true });
  await mkdir(tree, { recursive: true, mode: 0o755 });
  if (recipe.mmdebstrap) {
    const tar = await debianSystem(recipe.mmdebstrap, sources.cacheDir, onProgress);
    onProgress({ step: 'tree', message: 'unpacking the Debian system' });
    await runTool('tar', ['-xpf', tar, '-C', tree, '--numeric-owner']);
  }
  if (recipe.payloadTree.length > 0) {
    onProgress({ step: 'tree', message: `adding ${recipe.payloadTree.join(', ')} from the payload's initramfs` });
    const whole = recipe.payloadTree.includes('.');
    // cpio's patterns match whole paths and everything under them.
    const patterns = whole ? [] : recipe.payloadTree.flatMap((path) => [path, `${path}/*`]);
    await runTool('cpio', ['-idmu', '--quiet', '--no-absolute-filenames', ...patterns], {
      cwd: tree,
      stdinFrom: createReadStream(sources.payloadInitrd).pipe(createGunzip()),
    });
  }
  const rootfs = posix.join(sources.recipeDir, 'rootfs');
  if (existsSync(rootfs)) {
    onProgress({ step: 'tree', message: `adding images/${posix.basename(sources.recipeDir)}/rootfs` });
    // Owned by root whoever checked it out; modes and symlinks as in git.
    await runTool('cp', ['-a', '--no-preserve=ownership', `${rootfs}/.`, tree]);
  }
  if (recipe.hook) {
    onProgress({ step: 'hook', message: `running ${recipe.hook}` });
    await runTool(posix.join(sources.recipeDir, recipe.hook), [tree], {
      cwd: sources.recipeDir,
      env: { POCKETVM_IMAGE_TREE: tree },
      onLine: (line) => onProgress({ step: 'hook', message: line }),
    });
  }
}
