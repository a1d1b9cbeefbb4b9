// Host paths as data: split, compare and join them for a given host flavour
// (POSIX or Windows) and case rule, without touching the file system, so the
// table can be compiled and tested for every host on any host.
import { posix, win32 } from 'node:path';
import type { PathStyle } from './rules.ts';

export interface HostPathRules {
  style: PathStyle;
  caseInsensitive: boolean;
}

export function pathModule(style: PathStyle): typeof posix {
  return style === 'win32' ? win32 : posix;
}

/** Absolute for this host flavour (`C:\x`, `\\server\share\x` or `/x`). */
export function isAbsoluteHostPath(path: string, style: PathStyle): boolean {
  if (style === 'win32') return /^[A-Za-z]:[\\/]/.test(path) || /^[\\/]{2}[^\\/]/.test(path);
  return path.startsWith('/');
}

/**
 * The components of an absolute host path, the root first (`/`, `C:`,
 * `\\server\share`), normalised (`.`/`..` applied, separators unified).
 */
export function hostComponents(path: string, style: PathStyle): string[] {
  const mod = pathModule(style);
  const normal = mod.normalize(path);
  const root = mod.parse(normal).root;
  const rest = normal
    .slice(root.length)
    .split(mod.sep)
    .filter((part) => part !== '');
  const rootKey =
    style === 'win32'
      ? root
          .replace(/[\\/]+$/, '')
          .replaceAll('/', '\\')
          .toUpperCase()
      : '/';
  return [rootKey, ...rest];
}

/** Fold a name for comparison under the host's case rule. */
export function foldName(name: string, rules: HostPathRules): string {
  // Windows additionally ignores trailing dots and spaces in names.
  const trimmed = rules.style === 'win32' ? name.replace(/[. ]+$/, '') : name;
  return rules.caseInsensitive ? trimmed.normalize('NFC').toLowerCase() : trimmed;
}

export function foldedComponents(path: string, rules: HostPathRules): string[] {
  return hostComponents(path, rules.style).map((part) => foldName(part, rules));
}

/** True when `path` is `ancestor` or below it, under the host's rules. */
export function isHostPathWithin(path: string, ancestor: string, rules: HostPathRules): boolean {
  const p = foldedComponents(path, rules);
  const a = foldedComponents(ancestor, rules);
  return a.length <= p.length && a.every((part, i) => part === p[i]);
}

/** `root` joined with guest-side components (never climbs: components are validated names). */
export function joinHost(root: string, components: readonly string[], style: PathStyle): string {
  return components.length === 0 ? root : pathModule(style).join(root, ...components);
}
