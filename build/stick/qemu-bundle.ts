// `node build.js qemu`: a portable QEMU for Linux hosts, made from the QEMU
// Debian installed on the build machine: qemu-system-x86_64 and qemu-img,
// every shared library they load (found with build/payload's ELF DT_NEEDED
// reader and library closure), the dynamic loader itself, QEMU's loadable
// modules (TCG is one in Debian's build) and the x86 firmware and option ROMs.
//
// How it runs on a host with no QEMU: through the bundled dynamic loader,
// `lib/ld-linux-x86-64.so.2 --library-path lib bin/qemu-system-x86_64 -L share`
// with QEMU_MODULE_DIR=lib/qemu. The loader and libc travel together (glibc
// refuses a loader of another version), so nothing in the host's /usr/lib is
// used, and no absolute path is patched into a binary. How to start it is
// written in qemu-bundle.json, which src/vmm/qemu-binary.ts reads.
//
// Windows and macOS bundles cannot be made here: `--from-dir PLATFORM=DIR`
// takes one made elsewhere (a folder with qemu-system-x86_64[.exe] and what it
// needs) and puts it beside the Linux one for the stick builder.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, readdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { libraryClosure, type PayloadFile } from '../payload/libraries.ts';
import { compileNoDumpPreload, NO_DUMP_PRELOAD, noDumpPreloadSource } from './no-dump-preload.ts';
import type { ProgressListener } from './progress.ts';

export const QEMU_BUNDLE_FILE = 'qemu-bundle.json';

/** Where the host's QEMU pieces are (Debian's qemu-system-x86, qemu-utils, seabios, ipxe-qemu). */
export interface QemuSources {
  binaries: { system: string; img: string };
  moduleDir: string;
  /** Searched in order, as Debian's QEMU does (its --firmwarepath). */
  firmwareDirs: string[];
  /** Library directories of the host, relative to `/`. */
  libraryDirs: string[];
}

export const DEBIAN_QEMU: QemuSources = {
  binaries: { system: '/usr/bin/qemu-system-x86_64', img: '/usr/bin/qemu-img' },
  moduleDir: '/usr/lib/x86_64-linux-gnu/qemu',
  firmwareDirs: ['/usr/share/qemu', '/usr/share/seabios', '/usr/lib/ipxe/qemu'],
  libraryDirs: ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'lib64', 'usr/lib64', 'lib', 'usr/lib'],
};

// Firmware an x86 guest may load (-machine q35/pc/microvm, -kernel, option
// ROMs of NICs and VGA); other architectures' images stay behind.
const X86_FIRMWARE =
  /^(bios[-.].*|kvmvapic\.bin|linuxboot(_dma)?\.bin|multiboot(_dma)?\.bin|pvh\.bin|qboot\.rom|sgabios\.bin|vgabios.*\.bin|acpi-dsdt\.aml|(efi|pxe)-.*\.rom|keymaps)$/;
// TCG is a module in Debian's build; without it QEMU has no accelerator here.
const MODULES = /^accel-tcg-x86_64\.so$/;

export interface QemuBundleManifest {
  format: 1;
  platform: 'linux-x64';
  /** Paths relative to the bundle folder. */
  loader: string;
  libraryPath: string;
  binaries: { system: string; img: string };
  dataDir: string;
  moduleDir: string;
  /** Loaded into QEMU with the loader's --preload: makes it not dumpable (build/stick/no-dump-preload.ts). */
  preload?: string;
  qemuVersion: string;
}

export interface QemuBundleResult {
  dir: string;
  bytes: number;
  files: number;
  qemuVersion: string;
  cached: boolean;
}

function sh(command: string, args: string[], env?: NodeJS.ProcessEnv): string {
  const result = spawnSync(command, args, { encoding: 'utf8', ...(env ? { env } : {}) });
  if (result.error) throw new Error(`could not run ${command}: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (exit ${result.status}): ${result.stderr.trim()}`);
  return result.stdout;
}

async function treeBytes(dir: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    bytes += (await stat(join(entry.parentPath, entry.name))).size;
    files += 1;
  }
  return { bytes, files };
}

/** What the cache is keyed on: the host's QEMU binaries and this recipe. */
async function sourceKey(sources: QemuSources, root: string): Promise<string> {
  const hash = createHash('sha256').update(JSON.stringify({ sources, X86_FIRMWARE: X86_FIRMWARE.source, MODULES: MODULES.source, recipe: 3 }));
  hash.update(await readFile(noDumpPreloadSource(root)));
  for (const file of [sources.binaries.system, sources.binaries.img]) {
    const info = await stat(file);
    hash.update(`${file} ${info.size} ${info.mtimeMs}`);
  }
  return hash.digest('hex');
}

export async function buildLinuxQemuBundle(options: { root: string; sources?: QemuSources; onProgress?: ProgressListener }): Promise<QemuBundleResult> {
  const sources = options.sources ?? DEBIAN_QEMU;
  const report = options.onProgress ?? (() => {});
  const dir = join(options.root, '.cache', 'stick-parts', 'qemu', 'linux-x64');
  for (const binary of Object.values(sources.binaries)) {
    if (!existsSync(binary))
      throw new Error(`${binary} is missing: the Linux QEMU bundle is made from the build machine's QEMU (apt-get install qemu-system-x86 qemu-utils)`);
  }
  const key = await sourceKey(sources, options.root);
  const stampPath = join(dir, '.stamp');
  if (existsSync(stampPath) && (await readFile(stampPath, 'utf8')) === key) {
    const manifest = JSON.parse(await readFile(join(dir, QEMU_BUNDLE_FILE), 'utf8')) as QemuBundleManifest;
    return { dir, ...(await treeBytes(dir)), qemuVersion: manifest.qemuVersion, cached: true };
  }
  const work = `${dir}.partial`;
  await rm(work, { recursive: true, force: true });
  await mkdir(join(work, 'bin'), { recursive: true });
  await mkdir(join(work, 'lib', 'qemu'), { recursive: true });
  await mkdir(join(work, 'share'), { recursive: true });

  report({ step: 'qemu', message: 'collecting QEMU and the libraries it loads' });
  const roots: PayloadFile[] = [
    { archivePath: 'bin/qemu-system-x86_64', source: sources.binaries.system, provider: 'host', mode: 0o755 },
    { archivePath: 'bin/qemu-img', source: sources.binaries.img, provider: 'host', mode: 0o755 },
  ];
  for (const name of existsSync(sources.moduleDir) ? (await readdir(sources.moduleDir)).filter((n) => MODULES.test(n)) : []) {
    roots.push({ archivePath: `lib/qemu/${name}`, source: join(sources.moduleDir, name), provider: 'host', mode: 0o755 });
  }
  // The host root is the one "package tree"; the closure never follows a
  // library outside its library directories.
  const closure = await libraryClosure(roots, [{ name: 'host', tree: '/' }], sources.libraryDirs);
  if (closure.missing.size > 0) {
    throw new Error(`QEMU needs libraries this machine does not have: ${[...closure.missing].map(([so, by]) => `${so} (for ${by})`).join(', ')}`);
  }
  for (const file of roots) await cp(file.source, join(work, file.archivePath), { dereference: true });
  // Every library flat in lib/, under its soname (the name the loader asks for).
  for (const file of closure.files) await cp(file.source, join(work, 'lib', basename(file.archivePath)), { dereference: true });
  const loader = closure.files.map((f) => basename(f.archivePath)).find((name) => name.startsWith('ld-linux'));
  if (!loader) throw new Error('no dynamic loader found for QEMU');

  report({ step: 'qemu', message: 'collecting firmware and option ROMs' });
  for (const source of sources.firmwareDirs) {
    if (!existsSync(source)) continue;
    for (const name of await readdir(source)) {
      const target = join(work, 'share', name);
      if (!X86_FIRMWARE.test(name) || existsSync(target)) continue;
      let real: string;
      try {
        real = await realpath(join(source, name));
      } catch {
        continue; // a dangling link (firmware of a package that is not installed)
      }
      await cp(real, target, { recursive: true, dereference: true });
    }
  }
  for (const required of ['bios-256k.bin', 'kvmvapic.bin', 'linuxboot_dma.bin', 'efi-virtio.rom']) {
    if (!existsSync(join(work, 'share', required)))
      throw new Error(`QEMU firmware ${required} is missing from ${sources.firmwareDirs.join(', ')} (apt-get install seabios ipxe-qemu qemu-system-data)`);
  }
  for (const entry of await readdir(work, { withFileTypes: true, recursive: true })) {
    if (entry.isFile())
      await chmod(join(entry.parentPath, entry.name), entry.parentPath.endsWith('share') || entry.parentPath.includes('keymaps') ? 0o644 : 0o755);
  }

  const env = { PATH: '/nonexistent', QEMU_MODULE_DIR: join(work, 'lib', 'qemu') };
  const run = (binary: string, args: string[]) =>
    sh(join(work, 'lib', loader), ['--inhibit-cache', '--library-path', join(work, 'lib'), join(work, binary), ...args], env);
  const qemuVersion = /version ([0-9][^\s]*)/.exec(run('bin/qemu-system-x86_64', ['--version']))?.[1] ?? 'unknown';
  // The accelerator list proves the TCG module loads from the bundle.
  if (!/tcg/.test(run('bin/qemu-system-x86_64', ['-accel', 'help'])))
    throw new Error('the bundled QEMU does not list the tcg accelerator: its module did not load');
  run('bin/qemu-img', ['--version']);
  compileNoDumpPreload(options.root, join(work, 'lib', NO_DUMP_PRELOAD));
  // QEMU still starts with the preload loaded the way the launcher loads it.
  sh(
    join(work, 'lib', loader),
    [
      '--inhibit-cache',
      '--preload',
      join(work, 'lib', NO_DUMP_PRELOAD),
      '--library-path',
      join(work, 'lib'),
      join(work, 'bin/qemu-system-x86_64'),
      '--version',
    ],
    env,
  );

  const manifest: QemuBundleManifest = {
    format: 1,
    platform: 'linux-x64',
    loader: `lib/${loader}`,
    libraryPath: 'lib',
    binaries: { system: 'bin/qemu-system-x86_64', img: 'bin/qemu-img' },
    dataDir: 'share',
    moduleDir: 'lib/qemu',
    preload: `lib/${NO_DUMP_PRELOAD}`,
    qemuVersion,
  };
  await writeFile(join(work, QEMU_BUNDLE_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  // For a person at a shell; the launcher itself reads qemu-bundle.json.
  for (const [name, binary] of [
    ['qemu-system-x86_64', 'bin/qemu-system-x86_64'],
    ['qemu-img', 'bin/qemu-img'],
  ] as const) {
    const extra = name === 'qemu-img' ? '' : ' -L "$here/share"';
    await writeFile(
      join(work, name),
      `#!/bin/sh\n# Runs the bundled ${name} through the bundled loader and libraries.\nhere=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)\nQEMU_MODULE_DIR="$here/lib/qemu" exec "$here/${manifest.loader}" --inhibit-cache --library-path "$here/lib" "$here/${binary}"${extra} "$@"\n`,
      { mode: 0o755 },
    );
  }
  await writeFile(join(work, '.stamp'), key);
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, '..'), { recursive: true });
  await rename(work, dir);
  report({ step: 'qemu', message: `QEMU ${qemuVersion} bundled in ${dir}` });
  return { dir, ...(await treeBytes(dir)), qemuVersion, cached: false };
}

/** `--from-dir PLATFORM=DIR`: a bundle made elsewhere (Windows, macOS), copied in as it is. */
export async function importQemuBundle(root: string, platform: string, from: string): Promise<QemuBundleResult> {
  if (!/^(win-x64|darwin-x64|darwin-arm64|linux-x64)$/.test(platform))
    throw new Error(`unknown platform "${platform}" (win-x64, darwin-x64, darwin-arm64, linux-x64)`);
  const exe = platform === 'win-x64' ? 'qemu-system-x86_64.exe' : 'qemu-system-x86_64';
  if (!existsSync(join(from, exe)) && !existsSync(join(from, QEMU_BUNDLE_FILE))) throw new Error(`${from} has no ${exe} at its top level`);
  const dir = join(root, '.cache', 'stick-parts', 'qemu', platform);
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, '..'), { recursive: true });
  await cp(from, dir, { recursive: true, dereference: true });
  return { dir, ...(await treeBytes(dir)), qemuVersion: 'unknown', cached: false };
}
