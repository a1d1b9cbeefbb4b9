// The desktop guest's base image (images/desktop/): Debian bookworm packages
// through mmdebstrap (the machine's apt sources, no Recommends) into a
// directory, images/desktop/customize.sh over it (the guest's own files, the
// payload kernel's modules and an initramfs for that kernel), then
// `mke2fs -t ext4 -d` into .cache/desktop-image/desktop.ext4. The payload's
// kernel boots it (docs/desktop.md, "Building the image").
//
// A stamp of every input (the recipe, images/desktop/, the payload's stamp
// and the files taken from it, this file) lets a rebuild with nothing changed
// return at once: the tests and benchmarks share one image this way. The
// downloaded packages stay in .cache/desktop-image/debs/ for the next build.
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { desktopConf } from '../src/payload/desktop-guest.ts';
import { copyFileAtomic, writeFileAtomic } from './payload/atomic.ts';
import { runCommand } from './payload/run.ts';
import { hashInputs } from './payload/stamp.ts';

const recipeSchema = z.object({
  guest: z.string(),
  description: z.string(),
  suite: z.string(),
  variant: z.string(),
  packages: z.array(z.string()).min(1),
  dpkgExclude: z.array(z.string()),
  dpkgInclude: z.array(z.string()),
  kernelModulesExclude: z.array(z.string()),
  enable: z.array(z.string()),
  notes: z.array(z.string()),
});

const resultSchema = z.object({
  stampVersion: z.literal(1),
  inputs: z.string(),
  kernelVersion: z.string(),
  /** The ext4 image file's size (what the stick holds as the base). */
  imageBytes: z.number(),
  /** The bytes the file system uses inside it. */
  usedBytes: z.number(),
  /** The packages installed, as .deb files (what a build downloads with an empty cache). */
  downloadBytes: z.number(),
  packageCount: z.number(),
  buildSeconds: z.number(),
});

export type DesktopImage = z.infer<typeof resultSchema> & {
  /** The ext4 image, the initramfs inside it (copied out) and the payload's kernel. */
  image: string;
  initrd: string;
  kernel: string;
  cached: boolean;
};

export class DesktopImageError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DesktopImageError';
  }
}

const BUILDER = fileURLToPath(import.meta.url);

export async function buildDesktopImage(root: string, options: { force?: boolean; log?: (line: string) => void } = {}): Promise<DesktopImage> {
  const log = options.log ?? (() => {});
  const recipeFile = posix.join(root, 'images', 'desktop', 'recipe.json');
  const recipe = recipeSchema.parse(JSON.parse(await readFile(recipeFile, 'utf8')));
  const payloadDir = posix.join(root, 'payload', 'default');
  const payloadStamp = posix.join(payloadDir, 'payload.stamp.json');
  let kernelVersion: string;
  try {
    kernelVersion = z.object({ kernelVersion: z.string() }).parse(JSON.parse(await readFile(payloadStamp, 'utf8'))).kernelVersion;
  } catch (error) {
    throw new DesktopImageError('the desktop image needs the payload built first (node build.js payload): its kernel boots the image', { cause: error });
  }
  const cache = posix.join(root, '.cache');
  const kernelTree = await findKernelTree(posix.join(cache, 'payload', 'debs'), kernelVersion);
  const kmod = posix.join(cache, 'payload', 'kmod-build', kernelVersion, 'out', '9pnet_pocketvm.ko');
  const execd = posix.join(cache, 'payload', 'helpers-build', 'pocketvm-execd');
  const payloadRootfs = posix.join(root, 'payload', 'rootfs');

  const out = posix.join(cache, 'desktop-image');
  const image = posix.join(out, 'desktop.ext4');
  const initrd = posix.join(out, 'initrd.img');
  const kernel = posix.join(payloadDir, 'vmlinuz');
  const resultFile = posix.join(out, 'desktop-image.json');
  const inputs = await hashInputs(
    [
      { label: 'builder', path: BUILDER },
      { label: 'constants', path: posix.join(root, 'src', 'payload', 'desktop-guest.ts') },
      { label: 'payload-stamp', path: payloadStamp },
      { label: 'kmod', path: kmod },
      { label: 'execd', path: execd },
      { label: 'lib.sh', path: posix.join(payloadRootfs, 'lib', 'pocketvm', 'lib.sh') },
      { label: 'reg', path: posix.join(payloadRootfs, 'usr', 'bin', 'reg') },
      { label: 'namespace', path: posix.join(payloadRootfs, 'etc', 'pocketvm', 'boot.d', '40-namespace.sh') },
    ],
    [{ label: 'images/desktop', dir: posix.join(root, 'images', 'desktop') }],
  );
  if (!options.force) {
    const previous = await readResult(resultFile);
    if (previous && previous.inputs === inputs && (await exists(image)) && (await exists(initrd))) {
      return { ...previous, image, initrd, kernel, cached: true };
    }
  }

  const started = performance.now();
  const debs = posix.join(out, 'debs');
  const tree = posix.join(out, 'tree');
  await mkdir(debs, { recursive: true });
  await rm(tree, { recursive: true, force: true });
  await rm(image, { force: true });
  log(`mmdebstrap ${recipe.suite} (${recipe.packages.length} packages and their dependencies) into ${tree}`);
  const env = {
    DESKTOP_ROOTFS: posix.join(root, 'images', 'desktop', 'rootfs'),
    PAYLOAD_ROOTFS: payloadRootfs,
    EXECD: execd,
    KERNEL_TREE: kernelTree,
    KERNEL_VERSION: kernelVersion,
    KMOD: kmod,
    MODULES_EXCLUDE: recipe.kernelModulesExclude.join('\n'),
    DESKTOP_CONF: desktopConf(),
    ENABLE: recipe.enable.join(' '),
  };
  await runCommand(
    'mmdebstrap',
    [
      `--variant=${recipe.variant}`,
      `--include=${recipe.packages.join(',')}`,
      ...recipe.dpkgExclude.map((path) => `--dpkgopt=path-exclude=${path}`),
      ...recipe.dpkgInclude.map((path) => `--dpkgopt=path-include=${path}`),
      // The package cache survives between builds (mmdebstrap's documented recipe).
      '--skip=download/empty',
      '--skip=essential/unlink',
      '--setup-hook=mkdir -p "$1"/var/cache/apt/archives',
      `--setup-hook=sync-in ${debs} /var/cache/apt/archives`,
      `--customize-hook=sync-out /var/cache/apt/archives ${debs}`,
      `--customize-hook=${posix.join(root, 'images', 'desktop', 'customize.sh')} "$1"`,
      recipe.suite,
      tree,
    ],
    { env },
  ).catch((error: unknown) => {
    throw new DesktopImageError(`building the desktop tree failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  });

  // What was installed, and what those packages weigh as downloads.
  const installed = (await runCommand('chroot', [tree, 'dpkg-query', '-W', '-f', '${Package}_${Version}_${Architecture}\n'])).stdout.trim().split('\n');
  const debSizes = new Map<string, number>();
  for (const name of await readdir(debs)) {
    // apt names a cached package NAME_VERSION_ARCH.deb with the epoch's colon as %3a.
    if (name.endsWith('.deb')) debSizes.set(decodeURIComponent(name.slice(0, -4)), (await stat(posix.join(debs, name))).size);
  }
  const downloadBytes = installed.reduce((sum, pkg) => sum + (debSizes.get(pkg) ?? 0), 0);

  // The file system: what the tree uses plus a quarter (ext4's own metadata
  // and room for the guest's first writes before the overlay takes them).
  const usedBytes = Number((await runCommand('du', ['-s', '-B1', '--apparent-size', tree])).stdout.split(/\s/)[0]);
  const sizeMiB = Math.ceil((usedBytes * 1.25) / 1048576) + 64;
  const partial = `${image}.partial`;
  await rm(partial, { force: true });
  log(`mke2fs -t ext4 -d: ${sizeMiB} MiB`);
  await runCommand('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', 'pocketvm-desktop', '-m', '0', '-E', 'root_owner=0:0', '-d', tree, partial, `${sizeMiB}M`]);
  await copyFileAtomic(posix.join(tree, 'boot', `initrd.img-${kernelVersion}`), initrd);
  await runCommand('mv', ['-f', partial, image]);
  const imageBytes = (await stat(image)).size;
  const fsUsed = await usedInImage(image);
  await rm(tree, { recursive: true, force: true });

  const result = {
    stampVersion: 1 as const,
    inputs,
    kernelVersion,
    imageBytes,
    usedBytes: fsUsed,
    downloadBytes,
    packageCount: installed.length,
    buildSeconds: (performance.now() - started) / 1000,
  };
  await writeFileAtomic(resultFile, JSON.stringify(result, null, 2) + '\n');
  return { ...result, image, initrd, kernel, cached: false };
}

async function findKernelTree(debs: string, kernelVersion: string): Promise<string> {
  for (const name of await readdir(debs).catch(() => [] as string[])) {
    if (name.startsWith(`linux-image-${kernelVersion}_`) && !name.endsWith('.deb')) return posix.join(debs, name);
  }
  throw new DesktopImageError(`the payload kernel's unpacked package (linux-image-${kernelVersion}) is not in ${debs}: run node build.js payload --force`);
}

/** Blocks in use × block size, from the superblock (dumpe2fs -h). */
async function usedInImage(image: string): Promise<number> {
  const header = (await runCommand('dumpe2fs', ['-h', image])).stdout;
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(header)?.[1] ?? NaN);
  return (field('Block count') - field('Free blocks')) * field('Block size');
}

async function readResult(path: string): Promise<z.infer<typeof resultSchema> | undefined> {
  try {
    return resultSchema.parse(JSON.parse(await readFile(path, 'utf8')));
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** One line: the image's sizes and how it was made. */
export function describeDesktopImage(image: DesktopImage): string {
  const mib = (bytes: number) => `${(bytes / 1048576).toFixed(0)} MiB`;
  return (
    `desktop image: ${mib(image.imageBytes)} file (${mib(image.usedBytes)} used), ${image.packageCount} packages, ${mib(image.downloadBytes)} of .debs, ` +
    `kernel ${image.kernelVersion}, ${image.cached ? 'up to date' : `built in ${image.buildSeconds.toFixed(0)} s`}`
  );
}
