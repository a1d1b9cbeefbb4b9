// Which kernel modules the guest ships, and in which order init must insmod
// them. Debian's kernel package carries no modules.dep (depmod runs at
// install time), so dependencies come from each module's own .modinfo
// ("depends=" and "softdep=pre:"). Modules the kernel has built in
// (modules.builtin) need no file at all.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { readElfSection } from './elf-needed.ts';
import { PayloadBuildError } from './errors.ts';

export interface KernelModule {
  name: string;
  /** Path relative to lib/modules/<version>, always ending in .ko (shipped uncompressed). */
  path: string;
  /** Where the (possibly compressed) file is on the build machine. */
  source: string;
  depends: string[];
}

export interface ModulePlan {
  kernelVersion: string;
  /** group -> modules in load order (dependencies first), built-ins left out. */
  groups: Map<string, KernelModule[]>;
  /** Requested modules that are built into this kernel. */
  builtin: string[];
  /** Every module to ship, once. */
  modules: KernelModule[];
}

export function canonicalModuleName(name: string): string {
  return name.replace(/-/g, '_');
}

/** Parses the NUL-separated key=value strings of a .modinfo section. */
export function parseModinfo(section: Buffer): Map<string, string[]> {
  const fields = new Map<string, string[]>();
  for (const entry of section.toString('utf8').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const key = entry.slice(0, eq);
    fields.set(key, [...(fields.get(key) ?? []), entry.slice(eq + 1)]);
  }
  return fields;
}

/** Module names a "softdep=pre: a b post: c" value asks to load first. */
export function softdepPre(values: string[]): string[] {
  const result: string[] = [];
  for (const value of values) {
    let pre = false;
    for (const token of value.trim().split(/\s+/)) {
      if (token === 'pre:') pre = true;
      else if (token === 'post:') pre = false;
      else if (pre && token !== '') result.push(canonicalModuleName(token));
    }
  }
  return result;
}

const compressions = ['', '.xz', '.zst', '.gz'] as const;

/** Reads a module file, decompressing it: busybox insmod only takes a plain .ko. */
export async function readModuleFile(source: string): Promise<Buffer> {
  if (source.endsWith('.gz')) return gunzipSync(await readFile(source));
  if (source.endsWith('.zst')) return zstdDecompressSync(await readFile(source));
  if (source.endsWith('.xz')) {
    // node:zlib has no xz; xz-utils is on every Debian system that has dpkg.
    const result = spawnSync('xz', ['-dc', source], { maxBuffer: 256 * 1024 * 1024 });
    if (result.status !== 0) throw new PayloadBuildError(`cannot decompress ${source}: install xz-utils`);
    return result.stdout;
  }
  return readFile(source);
}

async function readLines(path: string): Promise<string[]> {
  try {
    return (await readFile(path, 'utf8')).split('\n').map((l) => l.trim()).filter((l) => l !== '');
  } catch (error) {
    throw new PayloadBuildError(`the kernel package has no ${posix.basename(path)}`, { hint: 'check the kernel package in payload/recipe.json', cause: error });
  }
}

/**
 * `extra`: modules the payload compiled itself (guest-modules.ts), found by
 * name like the kernel's own; their dependencies come from their .modinfo too.
 */
export async function planModules(
  modulesDir: string,
  kernelVersion: string,
  groups: Record<string, { modules: string[] }>,
  extra: ReadonlyArray<{ name: string; path: string; source: string }> = [],
): Promise<ModulePlan> {
  const byName = new Map<string, string>();
  for (const path of await readLines(posix.join(modulesDir, 'modules.order'))) {
    byName.set(canonicalModuleName(posix.basename(path, '.ko')), path);
  }
  const extraSource = new Map<string, string>();
  for (const m of extra) {
    byName.set(canonicalModuleName(m.name), m.path);
    extraSource.set(m.path, m.source);
  }
  const builtinNames = new Set((await readLines(posix.join(modulesDir, 'modules.builtin'))).map((p) => canonicalModuleName(posix.basename(p, '.ko'))));

  const loaded = new Map<string, KernelModule>();
  const load = async (name: string): Promise<KernelModule> => {
    const known = loaded.get(name);
    if (known) return known;
    const path = byName.get(name);
    if (!path) throw new PayloadBuildError(`kernel ${kernelVersion} has no module named ${name}`, { hint: 'fix the module lists in payload/recipe.json' });
    const suffix = extraSource.has(path) ? '' : compressions.find((c) => existsSync(posix.join(modulesDir, path + c)));
    if (suffix === undefined) throw new PayloadBuildError(`module file ${path} is missing from the kernel package`);
    const source = extraSource.get(path) ?? posix.join(modulesDir, path + suffix);
    const info = readElfSection(await readModuleFile(source), '.modinfo');
    const fields = info ? parseModinfo(info) : new Map<string, string[]>();
    const depends = (fields.get('depends') ?? []).flatMap((d) => d.split(',')).map((d) => canonicalModuleName(d.trim())).filter((d) => d !== '');
    // A soft dependency only helps when it names a real module file; ones that
    // name a crypto alias (ext4's "crc32c") are listed by hand in the recipe.
    const soft = softdepPre(fields.get('softdep') ?? []).filter((d) => byName.has(d) && !builtinNames.has(d));
    const module: KernelModule = { name, path, source, depends: [...new Set([...soft, ...depends])] };
    loaded.set(name, module);
    return module;
  };

  const plan: ModulePlan = { kernelVersion, groups: new Map(), builtin: [], modules: [] };
  for (const [group, spec] of Object.entries(groups)) {
    const order: KernelModule[] = [];
    const visiting = new Set<string>();
    const visit = async (raw: string) => {
      const name = canonicalModuleName(raw);
      if (builtinNames.has(name)) {
        if (!plan.builtin.includes(name)) plan.builtin.push(name);
        return;
      }
      if (order.some((m) => m.name === name)) return;
      if (visiting.has(name)) throw new PayloadBuildError(`module dependency cycle through ${name}`);
      visiting.add(name);
      const module = await load(name);
      for (const dep of module.depends) await visit(dep);
      visiting.delete(name);
      order.push(module);
    };
    for (const name of spec.modules) await visit(name);
    plan.groups.set(group, order);
  }
  plan.modules = [...loaded.values()].filter((m) => [...plan.groups.values()].some((g) => g.includes(m)));
  return plan;
}

/**
 * A modules.dep for the shipped modules, so `modprobe NAME` works in the
 * guest too. Like depmod's, each line lists every transitive dependency,
 * the one to load first last (modprobe walks the list backwards).
 */
export function modulesDep(modules: KernelModule[]): string {
  const byName = new Map(modules.map((m) => [m.name, m]));
  return modules
    .map((m) => {
      const order: KernelModule[] = [];
      const visit = (name: string) => {
        const dep = byName.get(name);
        if (!dep || order.includes(dep)) return;
        for (const next of dep.depends) visit(next);
        order.push(dep);
      };
      for (const dep of m.depends) visit(dep);
      return `${m.path}:${order.reverse().map((d) => ` ${d.path}`).join('')}\n`;
    })
    .join('');
}
