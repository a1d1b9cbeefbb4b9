// The dynamic tables' vocabulary (seed 004): a File Inclusion Table (FIT)
// entry says "this guest path comes from the stick", a File Exception Table
// (FET) entry says "this guest path comes from the host, at this host path".
// The most specific entry wins: with /host/WINDOWS/TEMP in the FIT and
// /host/WINDOWS in the FET, /host/WINDOWS/TEMP/x is read from the stick and
// /host/WINDOWS/SYSTEM/x from the host.
//
// Rules (RuleSpec) come from four origins and compile (compile.ts) into one
// immutable CompiledTable; resolver.ts answers "where does this guest path
// come from". Everything here is plain data: it prints as JSON unchanged.

/** Where the guest mounts the namespace; every entry's guest path is at or below it. */
export const NAMESPACE_MOUNT_POINT = '/host';

export type TableKind = 'FIT' | 'FET';

/**
 * `stick`: a FIT entry, read and written on the stick (users/<name>/files/).
 * `cow`: a FET entry, read from the host, every change lands in users/<name>/upper/.
 * `readonly`: a FET entry, read from the host, every change refused with EROFS.
 */
export type EntryMode = 'stick' | 'cow' | 'readonly';

/**
 * Who asked for a rule, in rising precedence: a rule for the same guest path
 * from a higher origin overrides a lower one. Only `confirmed` rules (a
 * registry rule the person confirmed at the launcher, `launcher tables
 * confirm`) may expose a default exclusion. A registry FET rule that is not
 * confirmed never applies: the guest writes its own registry, so it waits
 * (CompiledTable.waiting) until the person confirms it.
 */
export type RuleOrigin = 'builtin' | 'manifest' | 'registry' | 'confirmed';

export const ORIGIN_RANK: Readonly<Record<RuleOrigin, number>> = { builtin: 0, manifest: 1, registry: 2, confirmed: 3 };

/** A rule as written, before validation. */
export interface RuleSpec {
  /** Unique within its origin: the registry key name, the manifest's `name`, a built-in id. */
  name: string;
  table: TableKind;
  /** Absolute guest path; `\` is accepted as a separator (`\host\WINDOWS\TEMP`). */
  guestPath: string;
  /**
   * FET only: where on the host. A known folder (`{Documents}`, `{Downloads}`,
   * `{Desktop}`, `{Pictures}`, `{Music}`, `{Videos}`), `{home}` or `~`, each
   * optionally followed by `/sub/path`; or an absolute host path.
   */
  hostPath?: string;
  /** FET only; default `cow`. */
  mode?: 'cow' | 'readonly';
  origin: RuleOrigin;
  /** Where the rule was read: `built-in`, `payload/default/guest.json`, `registry Tables\Rules\X`. */
  source: string;
  description?: string;
  /**
   * A manifest rule the person confirmed (its fingerprint is in their signed
   * confirmations): it may then map a host folder outside the known folders.
   * Registry rules get origin `confirmed` instead.
   */
  confirmed?: boolean;
}

export type EntryTarget = { kind: 'stick'; store: 'files'; display: string } | { kind: 'host'; template: string; hostPath: string };

/** One line of the compiled table. */
export interface TableEntry {
  /** `<origin>:<name>`, unique in the table. */
  id: string;
  name: string;
  table: TableKind;
  /** Normalised: absolute, `/`-separated, no trailing slash, no `.`/`..`. */
  guestPath: string;
  target: EntryTarget;
  mode: EntryMode;
  origin: RuleOrigin;
  source: string;
  description?: string;
  /** Exclusion ids this (confirmed) entry lifts within its own host subtree. */
  exposes: string[];
  /** Lower-precedence rules for the same guest path that this one overrides. */
  overrides: string[];
}

export type ExclusionCategory =
  'ssh-keys' | 'gpg-keys' | 'browser-profile' | 'keychain' | 'credentials' | 'cloud-credentials' | 'other-users' | 'pocketvm' | 'pseudo-fs';

/** A host path the guest never sees unless a confirmed rule exposes it. */
export interface Exclusion {
  id: string;
  category: ExclusionCategory;
  /** Absolute host path; a component that is exactly `*` matches any one name. */
  hostPath: string;
  /** For `*` patterns: host paths the pattern does not cover (the person's own home). */
  except: string[];
  /** Why, in a few words: "SSH keys", "Firefox profiles". */
  reason: string;
  /** False for the stick's own user data and the pseudo file systems: no rule can expose them. */
  exposable: boolean;
}

/** A rule that is not in the table, and why. */
export interface SkippedRule {
  id: string;
  guestPath: string;
  origin: RuleOrigin;
  source: string;
  reason: string;
}

/**
 * A rule that would expose more than the person already shares (a FET rule
 * from the guest registry, or one outside every known folder) and has not
 * been confirmed at the launcher: it is not in the table until it is.
 */
export interface WaitingRule {
  id: string;
  name: string;
  table: TableKind;
  guestPath: string;
  origin: RuleOrigin;
  source: string;
  /** The rule's HostPath as written, and what it names on this host. */
  template: string;
  hostPath: string;
  mode: 'cow' | 'readonly';
  /** What `launcher tables confirm` binds to (registry-rules.ts ruleFingerprint). */
  fingerprint: string;
  /** Why it needs confirmation, in a few words. */
  why: string;
  /** What the guest would see once it is confirmed, in one sentence. */
  exposes: string;
  /** Default exclusions inside or around it that confirming would lift. */
  lifts: string[];
}

export interface TableProblem {
  severity: 'error' | 'warning';
  /** Rule ids involved. */
  rules: string[];
  message: string;
}

export type PathStyle = 'posix' | 'win32';

/** The host facts the table was compiled against (shown by `tables show`). */
export interface TableHost {
  os: 'linux' | 'windows' | 'darwin';
  pathStyle: PathStyle;
  home: string;
  user: string;
  /** Names on this host's file systems match case-insensitively (Windows, macOS default). */
  caseInsensitive: boolean;
}

export interface CompiledTable {
  mountPoint: string;
  host: TableHost;
  /** Sorted by guest path. */
  entries: readonly TableEntry[];
  exclusions: readonly Exclusion[];
  skipped: readonly SkippedRule[];
  /** Rules that apply only once the person confirms them (`launcher tables confirm`). */
  waiting: readonly WaitingRule[];
  problems: readonly TableProblem[];
}

/**
 * Normalise a guest path: `\` and `/` both separate, `.` and empty components
 * vanish, `..` is refused (a table entry never climbs). Returns undefined for
 * a relative path or one with `..` or NUL.
 */
export function normalizeGuestPath(path: string): string | undefined {
  if (path.includes('\0')) return undefined;
  const unified = path.replaceAll('\\', '/');
  if (!unified.startsWith('/')) return undefined;
  const parts: string[] = [];
  for (const part of unified.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') return undefined;
    parts.push(part);
  }
  return `/${parts.join('/')}`;
}

/** `/a/b` → ['a', 'b']; `/` → []. Expects a normalised path. */
export function guestComponents(path: string): string[] {
  return path === '/' ? [] : path.slice(1).split('/');
}

/** True when `path` is `ancestor` or below it (both normalised guest paths). */
export function isGuestPathWithin(path: string, ancestor: string): boolean {
  if (ancestor === '/') return true;
  return path === ancestor || path.startsWith(`${ancestor}/`);
}

/** Freeze a plain value and everything in it (the compiled table is immutable). */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as Record<string, unknown>)) deepFreeze(child);
  }
  return value;
}
