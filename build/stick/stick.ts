// `node build.js stick DIR` (and `launcher make-stick DIR` in a checkout): a
// complete stick. The entries a person double-clicks, one executable per
// platform with its native addons, the portable QEMU bundles, the payload,
// a short README, and .pocketvm/manifest.json with the sha256 of every file.
// Each part comes from its own cached build step, so a second stick is a copy.
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { initStick } from '../../src/stick/init-stick.ts';
import { MANIFEST_PATH, writeManifest } from '../../src/stick/stick-manifest.ts';
import { addonFilesFor } from './addons.ts';
import { consoleAssetDirs } from '../../src/console/asset-dirs.ts';
import { buildExecutables, EXECUTABLE_PLATFORMS, type ExecutablePlatform } from './executables.ts';
import type { ProgressListener } from './progress.ts';
import { buildLinuxQemuBundle } from './qemu-bundle.ts';

export interface StickBuildOptions {
  /** The repository root. */
  root: string;
  /** Where the stick goes: an empty folder or an existing stick. */
  dir: string;
  platforms?: readonly ExecutablePlatform[];
  guests?: string[];
  onProgress?: ProgressListener;
}

export interface StickBuildResult {
  dir: string;
  files: number;
  bytesByComponent: Record<'executables' | 'qemu' | 'payload' | 'other', number>;
  platforms: ExecutablePlatform[];
  qemuPlatforms: string[];
}

const STICK_README = `pocketvm
========

This drive is a pocketvm stick: a personal computer that lives on it and
runs beside the computer you plug it into, without installing anything there.

  Linux, macOS:  run \`launcher\` in this folder (double-click, or ./launcher in a terminal)
  Windows:       double-click launcher.exe (or launcher.cmd)

  launcher demo      boot the guest, show what it reports, shut it down
  launcher run       boot the guest on this terminal (Ctrl-] shuts it down)
  launcher verify    check every file of this stick against .pocketvm/manifest.json

Your guest's files live in users/; the computer you plug into keeps nothing.
The macOS and Windows launchers on this stick were built but never run by
their makers: tell them what happens.
`;

async function filesUnder(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  }
  return out.sort();
}

/** Files that change while the stick is used: never in the manifest. */
function mutable(path: string): boolean {
  return /^(users|run)\//.test(path) || ['.pocketvm/accelerators.json', '.pocketvm/host-salt', MANIFEST_PATH].includes(path) || path.endsWith('.partial');
}

async function copyWithProgress(pairs: Array<{ from: string; to: string; mode?: number }>, label: string, report: ProgressListener): Promise<void> {
  const sizes = await Promise.all(pairs.map(async (p) => (await stat(p.from)).size));
  const total = sizes.reduce((a, b) => a + b, 0);
  let done = 0;
  for (const [index, pair] of pairs.entries()) {
    report({ step: 'copy', message: `copying ${label}`, done, total, unit: 'bytes' });
    await mkdir(join(pair.to, '..'), { recursive: true });
    await copyFile(pair.from, `${pair.to}.partial`);
    if (pair.mode !== undefined) await chmod(`${pair.to}.partial`, pair.mode);
    await rename(`${pair.to}.partial`, pair.to);
    done += sizes[index]!;
  }
  report({ step: 'copy', message: `copied ${label}`, done: total, total, unit: 'bytes' });
}

/**
 * The console page's files (src/console/asset-dirs.ts): the page's own, and
 * noVNC's ES modules with its licence, served from the stick by the executable.
 */
async function consoleFiles(root: string, dir: string): Promise<Array<{ from: string; to: string; mode: number }>> {
  const source = consoleAssetDirs(root, false);
  const target = consoleAssetDirs(dir, true);
  await rm(join(dir, '.pocketvm', 'console'), { recursive: true, force: true });
  const pairs: Array<{ from: string; to: string; mode: number }> = [];
  for (const from of await filesUnder(source.page)) pairs.push({ from, to: join(target.page, relative(source.page, from)), mode: 0o644 });
  for (const part of ['core', 'vendor'])
    for (const from of await filesUnder(join(source.novnc, part)))
      if (from.endsWith('.js')) pairs.push({ from, to: join(target.novnc, relative(source.novnc, from)), mode: 0o644 });
  pairs.push({ from: join(source.novnc, 'LICENSE.txt'), to: join(target.novnc, 'LICENSE.txt'), mode: 0o644 });
  return pairs;
}

export async function buildStick(options: StickBuildOptions): Promise<StickBuildResult> {
  const { root, dir } = options;
  const report = options.onProgress ?? (() => {});
  const platforms = [...(options.platforms ?? EXECUTABLE_PLATFORMS)];
  const guests = options.guests ?? ['default'];
  const version = (JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string }).version;

  // 1. The parts, each from its cached build step.
  const { buildPayload } = await import('../payload.ts');
  for (const guest of guests) {
    report({ step: 'payload', message: `checking the ${guest} payload build` });
    // An image guest (images/<guest>/recipe.json) is its base image built over the payload it boots with.
    if (existsSync(join(root, 'images', guest, 'recipe.json'))) {
      const { buildImage } = await import('../image.ts');
      await buildImage({ root, guest, onProgress: (event) => report({ ...event, step: `image ${event.step}` }) });
    } else await buildPayload({ root, guest, onProgress: (event) => report({ ...event, step: `payload ${event.step}` }) });
  }
  const executables = await buildExecutables({ root, platforms, onProgress: report });
  report({ step: 'qemu', message: 'checking the portable QEMU for Linux' });
  await buildLinuxQemuBundle({ root, onProgress: report });
  const qemuParts = join(root, '.cache', 'stick-parts', 'qemu');
  const qemuPlatforms = (await readdir(qemuParts, { withFileTypes: true }))
    .filter((e) => e.isDirectory() && !e.name.endsWith('.partial'))
    .map((e) => e.name)
    .sort();

  // 2. The layout and the payload (init-stick's job: verified, atomic copies).
  await initStick({ root: dir, sourcePayloadRoot: join(root, 'payload'), guests, version, onProgress: report });
  await writeFile(join(dir, 'README.txt'), STICK_README);

  // 3. Executables with their addons, QEMU bundles, entries.
  for (const built of executables) {
    const binDir = join(dir, '.pocketvm', 'bin', built.platform);
    await rm(binDir, { recursive: true, force: true });
    const pairs = [{ from: built.path, to: join(binDir, built.platform === 'win-x64' ? 'launcher.exe' : 'launcher'), mode: 0o755 }];
    const addons = await addonFilesFor(root, built.platform);
    for (const addon of addons.files) pairs.push({ from: addon.source, to: join(binDir, addon.name), mode: 0o755 });
    if (addons.missing.length > 0)
      report({
        step: 'warning',
        message: `warning: no prebuilt ${addons.missing.join(', ')} addon for ${built.platform}: that launcher fails where it needs it`,
      });
    await copyWithProgress(pairs, `the ${built.platform} launcher`, report);
  }
  for (const platform of qemuPlatforms) {
    const target = join(dir, '.pocketvm', 'qemu', platform);
    await rm(target, { recursive: true, force: true });
    const source = join(qemuParts, platform);
    const files = (await filesUnder(source)).filter((f) => !f.endsWith(`${sep}.stamp`));
    await copyWithProgress(
      await Promise.all(files.map(async (from) => ({ from, to: join(target, relative(source, from)), mode: (await stat(from)).mode & 0o777 }))),
      `QEMU for ${platform}`,
      report,
    );
  }
  const entries = [
    { from: join(root, 'launcher'), to: join(dir, 'launcher'), mode: 0o755 },
    { from: join(root, 'launcher.cmd'), to: join(dir, 'launcher.cmd'), mode: 0o644 },
  ];
  const windows = executables.find((e) => e.platform === 'win-x64');
  if (windows) entries.push({ from: windows.path, to: join(dir, 'launcher.exe'), mode: 0o755 });
  await copyWithProgress(entries, 'the entries', report);
  await copyWithProgress(await consoleFiles(root, dir), 'the console page', report);

  // 4. The manifest over everything the stick was built with.
  const paths = (await filesUnder(dir)).map((f) => relative(dir, f).split(sep).join('/')).filter((p) => !mutable(p));
  report({ step: 'manifest', message: `hashing ${paths.length} files into ${MANIFEST_PATH}` });
  await writeManifest(dir, paths, version);

  const bytesByComponent = { executables: 0, qemu: 0, payload: 0, other: 0 };
  for (const path of paths) {
    const size = (await stat(join(dir, ...path.split('/')))).size;
    const key =
      path.startsWith('.pocketvm/bin/') || path === 'launcher.exe'
        ? 'executables'
        : path.startsWith('.pocketvm/qemu/')
          ? 'qemu'
          : path.startsWith('payload/')
            ? 'payload'
            : 'other';
    bytesByComponent[key] += size;
  }
  report({ step: 'done', message: `stick ready at ${dir}` });
  return { dir, files: paths.length, bytesByComponent, platforms, qemuPlatforms };
}
