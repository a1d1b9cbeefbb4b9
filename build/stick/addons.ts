// Native addons that travel on the stick, one folder per platform beside the
// executable (`.pocketvm/bin/<platform>/<name>.node`), where
// src/runtime/native-addon.ts loads them from: a single executable cannot
// hold a .node file, and nothing may be unpacked into the host's temp folder.
//
// In the bundle, each addon's own loading code is replaced (an esbuild plugin,
// `addonPlugin`) by a call to loadAddon(name), so the code that uses the
// package is the same from source and in the executable:
//   - `node-gyp-build` packages (argon2; usb and drivelist later): the
//     package's `require('node-gyp-build')(dir)` returns loadAddon(name);
//   - napi-rs packages (@napi-rs/keyring): the package itself is the binding,
//     so `import('@napi-rs/keyring')` becomes loadAddon(name); where the
//     package wraps its napi-rs loader (usb: dist/index.js requires
//     ../index.js), that loader file becomes loadAddon(name);
//   - `bindings` packages (drivelist): `require('bindings')('drivelist')`
//     returns loadAddon(name);
//   - a plain require of the .node file (registry-js: build/Release/registry.node)
//     becomes loadAddon(name);
//   - `direct` (koffi): pocketvm's own code calls loadAddon(name) on the
//     native module and never imports the package's JavaScript, so there is
//     nothing to rewrite (src/runtime/not-dumpable.ts).
// The prebuilt .node files come from the npm packages: from node_modules when
// the package ships every platform (argon2), else `npm pack` of the platform
// package into .cache/addons/ (napi-rs).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { basename, join, resolve, sep } from 'node:path';
import type { Plugin } from 'esbuild';
import type { ExecutablePlatform } from './executable-platforms.ts';

type Prebuilt = { file: string } | { npmPackage: string; file: string };

export interface NativeAddon {
  /** The name src/runtime/native-addon.ts loads it by (`<name>.node` on the stick). */
  name: string;
  /** The npm package the code imports. */
  module: string;
  kind: 'node-gyp-build' | 'napi-rs' | 'bindings' | 'file' | 'direct';
  /** napi-rs: the package's generated loader file when the package wraps it (usb: `index.js`); absent when the package is the binding. */
  binding?: string;
  /** Only these platforms' executables need it (registry-js: Windows); default: every platform it has a prebuilt for, the rest reported missing. */
  neededOn?: ExecutablePlatform[];
  /** Per platform: a file under node_modules, or a file in a platform package (same version as `module`). */
  prebuilt: Partial<Record<ExecutablePlatform, Prebuilt>>;
}

export const NATIVE_ADDONS: NativeAddon[] = [
  {
    name: 'argon2',
    module: 'argon2',
    kind: 'node-gyp-build',
    // argon2 0.45 ships no darwin-x64 prebuild (only darwin-arm64, which the
    // x64 executable cannot load): the macOS launcher says so when it needs it.
    prebuilt: {
      'linux-x64': { file: 'node_modules/argon2/prebuilds/linux-x64/argon2.glibc.node' },
      'win-x64': { file: 'node_modules/argon2/prebuilds/win32-x64/argon2.glibc.node' },
    },
  },
  {
    name: 'keyring',
    module: '@napi-rs/keyring',
    kind: 'napi-rs',
    prebuilt: {
      'linux-x64': { npmPackage: '@napi-rs/keyring-linux-x64-gnu', file: 'keyring.linux-x64-gnu.node' },
      'win-x64': { npmPackage: '@napi-rs/keyring-win32-x64-msvc', file: 'keyring.win32-x64-msvc.node' },
      'darwin-x64': { npmPackage: '@napi-rs/keyring-darwin-x64', file: 'keyring.darwin-x64.node' },
    },
  },
  {
    name: 'usb',
    module: 'usb',
    kind: 'napi-rs',
    binding: 'index.js',
    prebuilt: {
      'linux-x64': { npmPackage: '@node-usb/usb-linux-x64-gnu', file: 'usb.linux-x64-gnu.node' },
      'win-x64': { npmPackage: '@node-usb/usb-win32-x64-msvc', file: 'usb.win32-x64-msvc.node' },
      'darwin-x64': { npmPackage: '@node-usb/usb-darwin-x64', file: 'usb.darwin-x64.node' },
    },
  },
  {
    name: 'koffi',
    module: 'koffi',
    kind: 'direct',
    // One npm package per platform (koffi's optionalDependencies); npm
    // installs only this machine's, the others come through `npm pack`.
    prebuilt: {
      'linux-x64': { npmPackage: '@koromix/koffi-linux-x64', file: 'linux_x64/koffi.node' },
      'win-x64': { npmPackage: '@koromix/koffi-win32-x64', file: 'win32_x64/koffi.node' },
      'darwin-x64': { npmPackage: '@koromix/koffi-darwin-x64', file: 'darwin_x64/koffi.node' },
    },
  },
  {
    name: 'drivelist',
    module: 'drivelist',
    kind: 'bindings',
    // Built by node-gyp at npm install (its prebuilds are downloaded from
    // GitHub by prebuild-install, which is not reachable here): Linux only.
    // On Windows and macOS the stick then has no drivelist.node; the host
    // probe says the stick's drive is unknown there.
    prebuilt: {
      'linux-x64': { file: 'node_modules/drivelist/build/Release/drivelist.node' },
    },
  },
  {
    name: 'registry',
    module: 'registry-js',
    kind: 'file',
    // Windows only, and likewise no prebuild without GitHub: without it the
    // Windows probe reads the registry through reg.exe (src/platform/probe-source.ts).
    neededOn: ['win-x64'],
    prebuilt: {},
  },
];

/** The addons the code actually depends on (a package not installed is not bundled either). */
export function installedAddons(root: string, addons: NativeAddon[] = NATIVE_ADDONS): NativeAddon[] {
  return addons.filter((addon) => existsSync(join(root, 'node_modules', ...addon.module.split('/'), 'package.json')));
}

function packageVersion(root: string, name: string): string {
  return (JSON.parse(readFileSync(join(root, 'node_modules', ...name.split('/'), 'package.json'), 'utf8')) as { version: string }).version;
}

/** Where a platform package's file is: node_modules when installed there, else .cache/addons/ (npm pack). */
async function platformPackageFile(root: string, addon: NativeAddon, prebuilt: { npmPackage: string; file: string }): Promise<string> {
  const version = packageVersion(root, addon.module);
  const installed = join(root, 'node_modules', ...prebuilt.npmPackage.split('/'));
  if (existsSync(join(installed, prebuilt.file)) && packageVersion(root, prebuilt.npmPackage) === version) return join(installed, prebuilt.file);
  const dir = join(root, '.cache', 'addons', `${prebuilt.npmPackage.replace('/', '+')}-${version}`);
  const file = join(dir, 'package', prebuilt.file);
  if (existsSync(file)) return file;
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const packed = spawnSync('npm', ['pack', `${prebuilt.npmPackage}@${version}`, '--pack-destination', dir, '--silent'], { cwd: root, encoding: 'utf8' });
  if (packed.status !== 0) throw new Error(`npm pack ${prebuilt.npmPackage}@${version} failed: ${packed.stderr.trim()}`);
  const tarball = packed.stdout.trim().split('\n').at(-1)!;
  const untar = spawnSync('tar', ['-xzf', join(dir, tarball), '-C', dir], { encoding: 'utf8' });
  if (untar.status !== 0 || !existsSync(file)) throw new Error(`${prebuilt.npmPackage}@${version} has no ${prebuilt.file}`);
  return file;
}

export interface AddonFiles {
  files: Array<{ source: string; name: string }>;
  /** Addons with no prebuilt file for this platform: the launcher there reports it when it needs one. */
  missing: string[];
}

/** The addon files to put beside the `platform` executable. */
export async function addonFilesFor(root: string, platform: ExecutablePlatform, addons: NativeAddon[] = installedAddons(root)): Promise<AddonFiles> {
  const result: AddonFiles = { files: [], missing: [] };
  for (const addon of addons) {
    if (addon.neededOn && !addon.neededOn.includes(platform)) continue;
    const prebuilt = addon.prebuilt[platform];
    if (!prebuilt) {
      result.missing.push(addon.name);
      continue;
    }
    const source = 'npmPackage' in prebuilt ? await platformPackageFile(root, addon, prebuilt) : join(root, prebuilt.file);
    if (!existsSync(source)) throw new Error(`the prebuilt ${addon.name} addon for ${platform} is missing: ${source}`);
    result.files.push({ source, name: `${addon.name}.node` });
  }
  return result;
}

function packageOf(path: string): string | undefined {
  const parts = path.split(sep);
  const at = parts.lastIndexOf('node_modules');
  if (at < 0) return undefined;
  return parts[at + 1]?.startsWith('@') ? `${parts[at + 1]}/${parts[at + 2]}` : parts[at + 1];
}

/** The esbuild plugin that routes each addon's loading through src/runtime/native-addon.ts. */
export function addonPlugin(root: string, addons: NativeAddon[] = installedAddons(root)): Plugin {
  const loader = join(root, 'src', 'runtime', 'native-addon.ts');
  return {
    name: 'pocketvm-native-addons',
    setup(build) {
      build.onResolve({ filter: /^node-gyp-build$/ }, (args) => {
        const addon = addons.find((a) => a.kind === 'node-gyp-build' && a.module === packageOf(args.importer));
        if (!addon) return { errors: [{ text: `${packageOf(args.importer) ?? args.importer} loads a native addon that build/stick/addons.ts does not list` }] };
        return { path: addon.name, namespace: 'pocketvm-addon', pluginData: addon };
      });
      build.onResolve({ filter: /^bindings$/ }, (args) => {
        const addon = addons.find((a) => a.kind === 'bindings' && a.module === packageOf(args.importer));
        if (!addon)
          return {
            errors: [{ text: `${packageOf(args.importer) ?? args.importer} loads a native addon through bindings that build/stick/addons.ts does not list` }],
          };
        return { path: addon.name, namespace: 'pocketvm-addon', pluginData: addon };
      });
      build.onResolve({ filter: /\.node$/ }, (args) => {
        const addon = addons.find((a) => a.kind === 'file' && a.module === packageOf(args.importer));
        if (!addon)
          return { errors: [{ text: `${packageOf(args.importer) ?? args.importer} requires a .node file that build/stick/addons.ts does not list` }] };
        return { path: addon.name, namespace: 'pocketvm-addon', pluginData: addon };
      });
      for (const addon of addons.filter((a) => a.kind === 'napi-rs' && a.binding)) {
        const loaderFile = join(root, 'node_modules', ...addon.module.split('/'), addon.binding!);
        const filter = new RegExp(`${basename(addon.binding!).replace(/\./g, '\\.')}$`);
        // `usb/index.js` from anywhere, or `../index.js` from inside the package.
        const isLoader = (args: { path: string; importer: string; resolveDir: string }) =>
          args.path === `${addon.module}/${addon.binding}` || (packageOf(args.importer) === addon.module && resolve(args.resolveDir, args.path) === loaderFile);
        build.onResolve({ filter }, (args) => (isLoader(args) ? { path: addon.name, namespace: 'pocketvm-addon', pluginData: addon } : undefined));
      }
      for (const addon of addons.filter((a) => a.kind === 'napi-rs' && !a.binding)) {
        const filter = new RegExp(`^${addon.module.replace(/[/.]/g, (c) => `\\${c}`)}$`);
        build.onResolve({ filter }, () => ({ path: addon.name, namespace: 'pocketvm-addon', pluginData: addon }));
      }
      build.onLoad({ filter: /.*/, namespace: 'pocketvm-addon' }, (args) => {
        const addon = args.pluginData as NativeAddon;
        const call = `loadAddon(${JSON.stringify(addon.name)}, ${JSON.stringify(addon.module)})`;
        // node-gyp-build and bindings export a function that loads the addon.
        const loads = addon.kind === 'node-gyp-build' || addon.kind === 'bindings';
        return {
          resolveDir: root,
          loader: 'js',
          contents: `const { loadAddon } = require(${JSON.stringify(loader)});\nmodule.exports = ${loads ? `() => ${call}` : call};\n`,
        };
      });
    },
  };
}
