// `node build.js image <guest>`: an image guest's read-only base image from
// its recipe (images/<guest>/recipe.json), plus the kernel and initramfs of
// the payload it boots with, written to payload/<guest>/ with a manifest of
// kind "image" naming the base by its sha256 (docs/images.md). The tree is
// assembled and the mmdebstrap system cached under .cache/image/<guest>/; a
// stamp over every input skips a rebuild when nothing changed.
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyFileAtomic, writeFileAtomic } from './payload/atomic.ts';
import { asPayloadBuildError, PayloadBuildError } from './payload/errors.ts';
import { blockHashesFileName, BLOCK_BYTES, computeBlockHashes } from '../src/payload/base-blocks.ts';
import { sha256File } from './payload/hash.ts';
import { hashInputs } from './payload/stamp.ts';
import { imageSizeMiB, makeExt4, treeUsage } from './image/ext4.ts';
import { imageLineRenderer, type ImageProgressEvent } from './image/progress.ts';
import { readImageRecipe, type ImageRecipe } from './image/recipe.ts';
import { assembleTree } from './image/tree.ts';

export interface ImageBuildOptions {
  /** The repository root holding images/, payload/ and .cache/. */
  root: string;
  guest: string;
  force?: boolean;
  onProgress?: (event: ImageProgressEvent) => void;
}

export interface ImageBuildResult {
  guest: string;
  dir: string;
  base: string;
  sha256: string;
  bytes: number;
  cached: boolean;
  seconds: number;
}

const STAMP = 'image.stamp.json';
const KERNEL = 'vmlinuz';
const INITRD = 'initrd.img';

/** The base's file name: content-addressed, so a stick can keep an older base beside a newer one while overlays use it. */
export function baseFileName(sha256: string): string {
  return `base-${sha256}.ext4`;
}

async function builderSources(): Promise<Array<{ label: string; path: string }>> {
  const self = fileURLToPath(import.meta.url);
  const dir = posix.join(posix.dirname(self), 'image');
  const names = (await readdir(dir)).filter((name) => name.endsWith('.ts')).sort();
  return [{ label: 'build/image.ts', path: self }, ...names.map((name) => ({ label: `build/image/${name}`, path: posix.join(dir, name) }))];
}

function guestManifest(guest: string, recipe: ImageRecipe, base: { sha256: string; bytes: number; blocksSha256: string }): Record<string, unknown> {
  return {
    schemaVersion: 1,
    name: guest,
    ...(recipe.description ? { description: recipe.description } : {}),
    kind: 'image',
    kernel: KERNEL,
    initrd: INITRD,
    cmdline: ['console=ttyS0 panic=-1 rdinit=/init', recipe.guest.cmdline].filter(Boolean).join(' '),
    memory: recipe.guest.memory,
    cpus: recipe.guest.cpus,
    devices: { console: 'serial', agent: 'virtio-serial', network: recipe.guest.network },
    readyTimeoutSeconds: recipe.guest.readyTimeoutSeconds,
    ...(recipe.guest.execEnv ? { execEnv: recipe.guest.execEnv } : {}),
    image: {
      file: baseFileName(base.sha256),
      sha256: base.sha256,
      bytes: base.bytes,
      init: recipe.init,
      blocks: { file: blockHashesFileName(base.sha256), sha256: base.blocksSha256, blockBytes: BLOCK_BYTES },
    },
  };
}

async function readStamp(path: string): Promise<{ inputs: string; outputs: Record<string, string> } | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as { inputs: string; outputs: Record<string, string> };
  } catch {
    return undefined;
  }
}

/** Cheap check of the outputs: every file the stamp names has the size it had (hashing a large base on every call would not be). */
async function outputsPresent(dir: string, outputs: Record<string, string>): Promise<boolean> {
  for (const [name, size] of Object.entries(outputs)) {
    try {
      if (String((await stat(posix.join(dir, name))).size) !== size) return false;
    } catch {
      return false;
    }
  }
  return Object.keys(outputs).length > 0;
}

export async function buildImage(options: ImageBuildOptions): Promise<ImageBuildResult> {
  const started = performance.now();
  const { root, guest } = options;
  const onProgress = options.onProgress ?? imageLineRenderer();
  const recipeDir = posix.join(root, 'images', guest);
  const dir = posix.join(root, 'payload', guest);
  const cacheDir = posix.join(root, '.cache', 'image', guest);
  try {
    const recipe = await readImageRecipe(posix.join(recipeDir, 'recipe.json'));
    const kernelDir = posix.join(root, 'payload', recipe.kernelFrom);
    if (!existsSync(posix.join(kernelDir, 'SHA256SUMS'))) {
      throw new PayloadBuildError(`the ${recipe.kernelFrom} payload that boots ${guest} is not built`, {
        hint: `build it first: node build.js payload --guest ${recipe.kernelFrom}`,
      });
    }
    const inputs = await hashInputs(
      [{ label: 'payload', path: posix.join(kernelDir, 'SHA256SUMS') }, ...(await builderSources())],
      [{ label: 'images', dir: recipeDir }],
    );
    const stampPath = posix.join(dir, STAMP);
    const stamp = await readStamp(stampPath);
    const manifestPath = posix.join(dir, 'guest.json');
    if (!options.force && stamp?.inputs === inputs && (await outputsPresent(dir, stamp.outputs)) && existsSync(manifestPath)) {
      const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as { image: { file: string; sha256: string; bytes: number } };
      onProgress({ step: 'cached', message: `payload/${guest} is up to date (base ${manifest.image.sha256.slice(0, 12)})` });
      return {
        guest,
        dir,
        base: posix.join(dir, manifest.image.file),
        sha256: manifest.image.sha256,
        bytes: manifest.image.bytes,
        cached: true,
        seconds: (performance.now() - started) / 1000,
      };
    }
    await rm(stampPath, { force: true });

    const tree = posix.join(cacheDir, 'tree');
    await assembleTree(recipe, { recipeDir, cacheDir, payloadInitrd: posix.join(kernelDir, INITRD) }, tree, onProgress);
    const usage = treeUsage(tree);
    const sizeMiB = imageSizeMiB(usage, recipe.freeMiB);
    onProgress({ step: 'ext4', message: `making a ${sizeMiB} MiB ext4 file system from ${usage.files} files (${(usage.bytes / 1048576).toFixed(0)} MiB)` });
    const partial = posix.join(cacheDir, 'base.ext4.partial');
    await makeExt4({ tree, output: partial, sizeMiB, files: usage.files, label: 'pocketvm-root', inputs });
    await rm(tree, { recursive: true, force: true });
    onProgress({ step: 'hash', message: 'sha256 of the base' });
    const sha256 = await sha256File(partial);
    const bytes = (await stat(partial)).size;
    const baseName = baseFileName(sha256);
    // Each block's sha256 (docs/images.md, "How the base is checked"): a launch checks blocks as they are read, not the whole base first.
    onProgress({ step: 'hash', message: 'sha256 of each block of the base' });
    const blocks = await computeBlockHashes(partial);
    const blocksName = blockHashesFileName(sha256);

    // payload/<guest>/: the kernel and initramfs it boots with, the base, the manifest; older bases of this checkout go.
    for (const name of existsSync(dir) ? await readdir(dir) : []) {
      if (/^base-[0-9a-f]{64}\.(ext4|blocks)$/.test(name) && name !== baseName && name !== blocksName) await rm(posix.join(dir, name), { force: true });
    }
    await mkdir(dir, { recursive: true });
    // .cache/ and payload/ are in the same checkout: a rename, not a copy of a large file.
    await rename(partial, posix.join(dir, baseName));
    await writeFileAtomic(posix.join(dir, blocksName), blocks.list);
    await copyFileAtomic(posix.join(kernelDir, KERNEL), posix.join(dir, KERNEL));
    await copyFileAtomic(posix.join(kernelDir, INITRD), posix.join(dir, INITRD));
    const registry = existsSync(posix.join(recipeDir, 'registry.reg')) ? posix.join(recipeDir, 'registry.reg') : posix.join(kernelDir, 'registry.reg');
    if (existsSync(registry)) await copyFileAtomic(registry, posix.join(dir, 'registry.reg'));
    await writeFileAtomic(manifestPath, `${JSON.stringify(guestManifest(guest, recipe, { sha256, bytes, blocksSha256: blocks.sha256 }), null, 2)}\n`);
    const sums = [];
    for (const name of [KERNEL, INITRD, baseName, blocksName])
      sums.push(`${name === baseName ? sha256 : name === blocksName ? blocks.sha256 : await sha256File(posix.join(dir, name))}  ${name}\n`);
    await writeFileAtomic(posix.join(dir, 'SHA256SUMS'), sums.join(''));
    const outputs: Record<string, string> = {};
    for (const name of [KERNEL, INITRD, baseName, blocksName, 'SHA256SUMS']) outputs[name] = String((await stat(posix.join(dir, name))).size);
    await writeFileAtomic(stampPath, `${JSON.stringify({ inputs, outputs }, null, 2)}\n`);
    onProgress({ step: 'done', message: `payload/${guest}/${baseName.slice(0, 17)}…: ${(bytes / 1048576).toFixed(0)} MiB` });
    return { guest, dir, base: posix.join(dir, baseName), sha256, bytes, cached: false, seconds: (performance.now() - started) / 1000 };
  } catch (error) {
    throw asPayloadBuildError(error, root);
  }
}
