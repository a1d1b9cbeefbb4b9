// resolvePath: which table entry a guest path falls under, where that leads
// (the stick or a host path), whether changes are kept (stick),
// copied-on-write (cow) or refused (readonly), and why. The most specific
// entry wins: with /host/WINDOWS/TEMP in the FIT and /host/WINDOWS in the FET,
// /host/WINDOWS/TEMP/x comes from the stick and /host/WINDOWS/SYSTEM/x from
// the host. Guest paths above entries (/host when only /host/Documents is
// mapped) are virtual directories listing the next components.
import { excludedBy } from './exclusions.ts';
import { joinHost } from './host-paths.ts';
import { type CompiledTable, type EntryMode, type Exclusion, guestComponents, normalizeGuestPath, type TableEntry } from './rules.ts';

export interface EntryResolution {
  kind: 'entry';
  guestPath: string;
  entry: TableEntry;
  /** Components below entry.guestPath. */
  relative: string[];
  /** FET: the host path (the entry's host folder joined with `relative`). */
  hostPath?: string;
  access: EntryMode;
  /** FET: the default exclusion hiding this path, if any. */
  excludedBy?: Exclusion;
  /** Every entry whose guest path contains this one, most specific first. */
  candidates: TableEntry[];
  /** Names directly below this path that lead to more specific entries (always directories). */
  reservedChildren: string[];
  reason: string;
}

export interface VirtualResolution {
  kind: 'virtual';
  guestPath: string;
  /** Names directly below: the next component of each entry beneath. */
  children: string[];
  reason: string;
}

export interface UnmappedResolution {
  kind: 'unmapped';
  guestPath: string;
  reason: string;
}

export type Resolution = EntryResolution | VirtualResolution | UnmappedResolution;

interface TrieNode {
  entry?: TableEntry;
  children: Map<string, TrieNode>;
}

const tries = new WeakMap<CompiledTable, TrieNode>();

function trieOf(table: CompiledTable): TrieNode {
  let root = tries.get(table);
  if (root) return root;
  root = { children: new Map() };
  for (const entry of table.entries) {
    let node = root;
    for (const part of guestComponents(entry.guestPath)) {
      let child = node.children.get(part);
      if (!child) {
        child = { children: new Map() };
        node.children.set(part, child);
      }
      node = child;
    }
    node.entry = entry;
  }
  tries.set(table, root);
  return root;
}

/** The bare answer for the hot path (the 9P backend): no explanations, no exclusion check. */
export type EntryLookup =
  { kind: 'entry'; entry: TableEntry; relative: string[]; reservedChildren: string[] } | { kind: 'virtual'; children: string[] } | { kind: 'unmapped' };

/**
 * Look up an already normalised guest path (as the 9P server passes it:
 * '/'-separated; a `\` is part of a name here, never a separator).
 */
export function lookupEntry(table: CompiledTable, path: string): EntryLookup {
  const parts = guestComponents(path);
  let node: TrieNode | undefined = trieOf(table);
  let best: TableEntry | undefined = node.entry;
  let bestDepth = 0;
  let depth = 0;
  for (const part of parts) {
    node = node.children.get(part);
    if (!node) break;
    depth++;
    if (node.entry) {
      best = node.entry;
      bestDepth = depth;
    }
  }
  const reservedChildren = depth === parts.length && node ? [...node.children.keys()].sort() : [];
  if (!best) return depth === parts.length && node ? { kind: 'virtual', children: reservedChildren } : { kind: 'unmapped' };
  return { kind: 'entry', entry: best, relative: parts.slice(bestDepth), reservedChildren };
}

const modeWords: Record<EntryMode, string> = {
  stick: 'read and written on the stick',
  cow: 'copy-on-write: read from the host, every change lands in users/<name>/upper/ on the stick',
  readonly: 'read-only: read from the host, changes are refused (EROFS)',
};

function describeEntry(entry: TableEntry): string {
  return `${entry.table} ${entry.guestPath} (${entry.origin}, ${entry.source})`;
}

/**
 * Resolve a guest path against the table. Accepts `\` separators (CLI input);
 * a relative path or one with `..` resolves to `unmapped`.
 */
export function resolvePath(table: CompiledTable, guestPath: string): Resolution {
  const path = normalizeGuestPath(guestPath);
  if (path === undefined) return { kind: 'unmapped', guestPath, reason: `"${guestPath}" is not an absolute guest path without ..` };
  const parts = guestComponents(path);
  let node: TrieNode | undefined = trieOf(table);
  const candidates: Array<{ entry: TableEntry; depth: number }> = [];
  if (node.entry) candidates.push({ entry: node.entry, depth: 0 });
  let depth = 0;
  for (const part of parts) {
    node = node.children.get(part);
    if (!node) break;
    depth++;
    if (node.entry) candidates.push({ entry: node.entry, depth });
  }
  const exact = depth === parts.length ? node : undefined;
  const reservedChildren = exact ? [...exact.children.keys()].sort() : [];
  const best = candidates.at(-1);
  if (!best) {
    if (exact) {
      return {
        kind: 'virtual',
        guestPath: path,
        children: reservedChildren,
        reason: `no entry maps ${path} itself; it is a virtual folder leading to ${reservedChildren.map((c) => (path === '/' ? `/${c}` : `${path}/${c}`)).join(', ')}`,
      };
    }
    return { kind: 'unmapped', guestPath: path, reason: `no table entry covers ${path} (the namespace is mounted at ${table.mountPoint})` };
  }
  const entry = best.entry;
  const relative = parts.slice(best.depth);
  const others = candidates
    .slice(0, -1)
    .reverse()
    .map((c) => c.entry);
  const specific = others.length > 0 ? `most specific of: ${[entry, ...others].map(describeEntry).join(', ')}` : `covered only by ${describeEntry(entry)}`;
  const resolution: EntryResolution = {
    kind: 'entry',
    guestPath: path,
    entry,
    relative,
    access: entry.mode,
    candidates: [entry, ...others],
    reservedChildren,
    reason: '',
  };
  if (entry.target.kind === 'host') {
    resolution.hostPath = joinHost(entry.target.hostPath, relative, table.host.pathStyle);
    const excluded = excludedBy(table, entry, resolution.hostPath);
    if (excluded) resolution.excludedBy = excluded;
    resolution.reason = excluded
      ? `excluded because ${excluded.hostPath} holds ${excluded.reason} (default exclusion "${excluded.id}"); ${excluded.exposable ? 'only a rule confirmed with `launcher tables confirm` can expose it' : 'no rule can expose it'}; ${specific}`
      : `${specific}; host ${resolution.hostPath}; ${modeWords[entry.mode]}`;
  } else {
    resolution.reason = `${specific}; ${entry.target.display}${relative.length ? `/${relative.join('/')}` : ''}; ${modeWords.stick}`;
  }
  if (entry.exposes.length > 0 && !resolution.excludedBy) resolution.reason += `; this confirmed rule exposes ${entry.exposes.join(', ')}`;
  return resolution;
}

/** A resolution as plain JSON for `tables explain --json`. */
export function resolutionJson(resolution: Resolution): Record<string, unknown> {
  if (resolution.kind !== 'entry') return { ...resolution };
  const { entry, candidates, excludedBy: excluded, ...rest } = resolution;
  return {
    ...rest,
    entry: entry.id,
    table: entry.table,
    target: entry.target.kind === 'host' ? 'host' : 'stick',
    visible: !excluded,
    ...(excluded ? { excludedBy: excluded } : {}),
    candidates: candidates.map((c) => ({ id: c.id, table: c.table, guestPath: c.guestPath, origin: c.origin })),
  };
}
