// Host secrets the guest never sees by default: SSH and GPG keys, browser
// profiles, keychains and credential stores, cloud CLI credentials, other
// users' homes, and the pocketvm stick itself; and, never exposable, the
// pseudo and device file systems (pseudo-filesystems.ts). An excluded path is invisible
// (ENOENT, never listed) whatever rule maps its surroundings; only a rule the
// person confirmed at the launcher, whose host path lies at or inside the
// excluded path, lifts it, and only within that rule.
import { foldedComponents, foldName, type HostPathRules, pathModule } from './host-paths.ts';
import { pseudoFsExclusions } from './pseudo-filesystems.ts';
import type { CompiledTable, Exclusion, ExclusionCategory, PathStyle, TableEntry } from './rules.ts';

export interface ExclusionHost {
  os: 'linux' | 'windows' | 'darwin';
  pathStyle: PathStyle;
  home: string;
  env: Readonly<Record<string, string | undefined>>;
  /** The stick's root when known: hidden from the guest, never exposable. */
  stickRoot?: string;
  /** Linux: where pseudo file systems are mounted (/proc/self/mountinfo), never exposable. */
  pseudoMounts?: readonly string[];
}

type Item = [id: string, category: ExclusionCategory, reason: string, relative: string];

// Relative to the home folder, on every host (tools that keep Unix habits on
// Windows and macOS too).
const COMMON: Item[] = [
  ['ssh', 'ssh-keys', 'SSH keys', '.ssh'],
  ['gnupg', 'gpg-keys', 'GPG keys', '.gnupg'],
  ['password-store', 'keychain', 'pass password store', '.password-store'],
  ['netrc', 'credentials', '.netrc login credentials', '.netrc'],
  ['git-credentials', 'credentials', 'git credential store', '.git-credentials'],
  ['git-credentials-xdg', 'credentials', 'git credential store', '.config/git/credentials'],
  ['docker-config', 'credentials', 'Docker registry credentials', '.docker/config.json'],
  ['npmrc', 'credentials', 'npm tokens', '.npmrc'],
  ['pypirc', 'credentials', 'PyPI tokens', '.pypirc'],
  ['cargo-credentials', 'credentials', 'crates.io token', '.cargo/credentials.toml'],
  ['gh', 'credentials', 'GitHub CLI tokens', '.config/gh'],
  ['aws', 'cloud-credentials', 'AWS CLI credentials', '.aws'],
  ['gcloud', 'cloud-credentials', 'Google Cloud CLI credentials', '.config/gcloud'],
  ['azure', 'cloud-credentials', 'Azure CLI credentials', '.azure'],
  ['kube', 'cloud-credentials', 'Kubernetes credentials', '.kube'],
  ['oci', 'cloud-credentials', 'Oracle Cloud CLI credentials', '.oci'],
  ['doctl', 'cloud-credentials', 'DigitalOcean CLI credentials', '.config/doctl'],
  ['terraform', 'cloud-credentials', 'Terraform Cloud token', '.terraform.d/credentials.tfrc.json'],
];

const LINUX: Item[] = [
  ['firefox', 'browser-profile', 'Firefox profiles', '.mozilla'],
  ['thunderbird', 'browser-profile', 'Thunderbird profiles', '.thunderbird'],
  ['chrome', 'browser-profile', 'Chrome profiles', '.config/google-chrome'],
  ['chromium', 'browser-profile', 'Chromium profiles', '.config/chromium'],
  ['brave', 'browser-profile', 'Brave profiles', '.config/BraveSoftware'],
  ['edge', 'browser-profile', 'Edge profiles', '.config/microsoft-edge'],
  ['vivaldi', 'browser-profile', 'Vivaldi profiles', '.config/vivaldi'],
  ['opera', 'browser-profile', 'Opera profiles', '.config/opera'],
  ['snap-firefox', 'browser-profile', 'Firefox (snap) profiles', 'snap/firefox'],
  ['snap-chromium', 'browser-profile', 'Chromium (snap) profiles', 'snap/chromium'],
  ['snap-thunderbird', 'browser-profile', 'Thunderbird (snap) profiles', 'snap/thunderbird'],
  ['flatpak-firefox', 'browser-profile', 'Firefox (flatpak) profiles', '.var/app/org.mozilla.firefox'],
  ['flatpak-chrome', 'browser-profile', 'Chrome (flatpak) profiles', '.var/app/com.google.Chrome'],
  ['flatpak-chromium', 'browser-profile', 'Chromium (flatpak) profiles', '.var/app/org.chromium.Chromium'],
  ['keyrings', 'keychain', 'GNOME keyrings', '.local/share/keyrings'],
  ['kwallet', 'keychain', 'KDE wallets', '.local/share/kwalletd'],
  ['nssdb', 'keychain', 'NSS certificate and key database', '.pki'],
];

const DARWIN: Item[] = [
  ['keychains', 'keychain', 'macOS keychains', 'Library/Keychains'],
  ['chrome', 'browser-profile', 'Chrome profiles', 'Library/Application Support/Google'],
  ['chromium', 'browser-profile', 'Chromium profiles', 'Library/Application Support/Chromium'],
  ['firefox', 'browser-profile', 'Firefox profiles', 'Library/Application Support/Firefox'],
  ['thunderbird', 'browser-profile', 'Thunderbird profiles', 'Library/Thunderbird'],
  ['brave', 'browser-profile', 'Brave profiles', 'Library/Application Support/BraveSoftware'],
  ['edge', 'browser-profile', 'Edge profiles', 'Library/Application Support/Microsoft Edge'],
  ['vivaldi', 'browser-profile', 'Vivaldi profiles', 'Library/Application Support/Vivaldi'],
  ['safari', 'browser-profile', 'Safari data', 'Library/Safari'],
  ['safari-container', 'browser-profile', 'Safari data', 'Library/Containers/com.apple.Safari'],
  ['cookies', 'browser-profile', 'cookies', 'Library/Cookies'],
  ['firefox-dotdir', 'browser-profile', 'Firefox profiles', '.mozilla'],
];

// Windows: relative to the profile folder (AppData\Roaming is %APPDATA%,
// AppData\Local is %LOCALAPPDATA%; both are also resolved from the
// environment when they live elsewhere).
const WINDOWS_ROAMING: Item[] = [
  ['firefox', 'browser-profile', 'Firefox profiles', 'Mozilla'],
  ['thunderbird', 'browser-profile', 'Thunderbird profiles', 'Thunderbird'],
  ['opera', 'browser-profile', 'Opera profiles', 'Opera Software'],
  ['gnupg-appdata', 'gpg-keys', 'GPG keys (Gpg4win)', 'gnupg'],
  ['credentials-roaming', 'keychain', 'Windows Credential Manager', 'Microsoft/Credentials'],
  ['dpapi', 'keychain', 'DPAPI master keys', 'Microsoft/Protect'],
  ['gcloud-appdata', 'cloud-credentials', 'Google Cloud CLI credentials', 'gcloud'],
  ['gh-appdata', 'credentials', 'GitHub CLI tokens', 'GitHub CLI'],
];
const WINDOWS_LOCAL: Item[] = [
  ['chrome', 'browser-profile', 'Chrome profiles', 'Google/Chrome'],
  ['chromium', 'browser-profile', 'Chromium profiles', 'Chromium'],
  ['edge', 'browser-profile', 'Edge profiles', 'Microsoft/Edge'],
  ['brave', 'browser-profile', 'Brave profiles', 'BraveSoftware'],
  ['vivaldi', 'browser-profile', 'Vivaldi profiles', 'Vivaldi'],
  ['credentials-local', 'keychain', 'Windows Credential Manager', 'Microsoft/Credentials'],
  ['vault', 'keychain', 'Windows Vault', 'Microsoft/Vault'],
];
const WINDOWS_HOME: Item[] = [['netrc-windows', 'credentials', '_netrc login credentials', '_netrc']];

/** The default exclusions for a host. Pure: the same host facts give the same list. */
export function defaultExclusions(host: ExclusionHost): Exclusion[] {
  const mod = pathModule(host.pathStyle);
  const list: Exclusion[] = [];
  const seen = new Set<string>();
  const add = (item: Item, base: string, except: string[] = []) => {
    const hostPath = mod.join(base, ...item[3].split('/'));
    const key = `${item[0]}|${hostPath}`;
    if (seen.has(key)) return;
    seen.add(key);
    const id = list.some((e) => e.id === item[0]) ? `${item[0]}-${list.filter((e) => e.id.startsWith(item[0])).length + 1}` : item[0];
    list.push({ id, category: item[1], reason: item[2], hostPath, except, exposable: item[1] !== 'pocketvm' });
  };
  for (const item of COMMON) add(item, host.home);
  if (host.os === 'linux') for (const item of LINUX) add(item, host.home);
  if (host.os === 'darwin') for (const item of DARWIN) add(item, host.home);
  if (host.os === 'windows') {
    const roaming = [mod.join(host.home, 'AppData', 'Roaming'), host.env['APPDATA']].filter(isAbsoluteIn(mod));
    const local = [mod.join(host.home, 'AppData', 'Local'), host.env['LOCALAPPDATA']].filter(isAbsoluteIn(mod));
    for (const base of roaming) for (const item of WINDOWS_ROAMING) add(item, base);
    for (const base of local) for (const item of WINDOWS_LOCAL) add(item, base);
    for (const item of WINDOWS_HOME) add(item, host.home);
  }
  // Other users' homes: every sibling of this home, and every home in the
  // OS's usual place (this home may be elsewhere, e.g. /root).
  const conventional = host.os === 'linux' ? '/home' : host.os === 'darwin' ? '/Users' : mod.join(mod.parse(host.home).root, 'Users');
  const parents = [mod.dirname(host.home), conventional].filter((parent, i, all) => mod.parse(parent).root !== parent && all.indexOf(parent) === i);
  parents.forEach((parent, i) => {
    const keep = [host.home];
    if (host.os === 'darwin') keep.push(mod.join(parent, 'Shared'));
    if (host.os === 'windows') keep.push(mod.join(parent, 'Public'));
    list.push({
      id: i === 0 ? 'other-homes' : `other-homes-${i + 1}`,
      category: 'other-users',
      reason: "other users' home folders",
      hostPath: mod.join(parent, '*'),
      except: keep,
      exposable: true,
    });
  });
  const systemHome = host.os === 'linux' ? '/root' : host.os === 'darwin' ? '/var/root' : undefined;
  if (systemHome && systemHome !== host.home)
    list.push({ id: 'root-home', category: 'other-users', reason: "the administrator's home folder", hostPath: systemHome, except: [], exposable: true });
  if (host.stickRoot) {
    list.push({
      id: 'pocketvm-stick',
      category: 'pocketvm',
      reason: 'the pocketvm stick itself (user keys, registries, copy-on-write layers, session files)',
      hostPath: host.stickRoot,
      except: [],
      exposable: false,
    });
  }
  list.push(...pseudoFsExclusions(host));
  return list;
}

function isAbsoluteIn(mod: ReturnType<typeof pathModule>): (value: string | undefined) => value is string {
  return (value): value is string => typeof value === 'string' && mod.isAbsolute(value);
}

/** Exclusions prepared for fast matching (folded components). */
interface PreparedExclusion {
  exclusion: Exclusion;
  parts: string[];
  except: string[][];
}

/**
 * Answers "is this host path excluded" for one table. Built once per table
 * (the table is immutable) and reused for every lookup.
 */
export class ExclusionMatcher {
  readonly rules: HostPathRules;
  readonly #prepared: PreparedExclusion[];

  constructor(exclusions: readonly Exclusion[], rules: HostPathRules, prepared?: PreparedExclusion[]) {
    this.rules = rules;
    this.#prepared =
      prepared ??
      exclusions.map((exclusion) => ({
        exclusion,
        parts: foldedComponents(exclusion.hostPath, rules),
        except: exclusion.except.map((path) => foldedComponents(path, rules)),
      }));
  }

  /**
   * A matcher with only the exclusions that can match at or below one of
   * `roots` (folded components): most host folders contain none, and then
   * every check is free.
   */
  narrow(roots: readonly (readonly string[])[]): ExclusionMatcher {
    const agrees = (pattern: readonly string[], root: readonly string[]) => {
      const n = Math.min(pattern.length, root.length);
      for (let i = 0; i < n; i++) if (pattern[i] !== '*' && pattern[i] !== root[i]) return false;
      return true;
    };
    return new ExclusionMatcher(
      [],
      this.rules,
      this.#prepared.filter((p) => roots.some((root) => agrees(p.parts, root))),
    );
  }

  get empty(): boolean {
    return this.#prepared.length === 0;
  }

  /**
   * The exclusion covering `hostPath` (at or below it), if any, skipping the
   * ids in `exposed` (those lifted by the rule that resolved the path).
   */
  match(hostPath: string, exposed: readonly string[] = []): Exclusion | undefined {
    return this.matchComponents(foldedComponents(hostPath, this.rules), exposed);
  }

  /** As match, for already folded components (the backend extends a parent's list by one name). */
  matchComponents(parts: readonly string[], exposed: readonly string[] = []): Exclusion | undefined {
    for (const prepared of this.#prepared) {
      if (exposed.includes(prepared.exclusion.id)) continue;
      if (covers(prepared.parts, parts) && !prepared.except.some((except) => startsWith(parts, except))) return prepared.exclusion;
    }
    return undefined;
  }

  /**
   * The test for the children of one folder (`parts`, folded components),
   * compiled once for a whole listing: undefined when no exclusion can match
   * any child (the usual case: then no name is checked at all), else a test
   * of a child's folded name. The same answers as matchComponents of the
   * child's components; only exclusions ending exactly at a child are kept
   * (longer ones hide something below a child, shorter ones the folder
   * itself, which is never listed).
   */
  childTest(parts: readonly string[], exposed: readonly string[] = []): ((foldedName: string) => boolean) | undefined {
    const depth = parts.length;
    const candidates: PreparedExclusion[] = [];
    for (const prepared of this.#prepared) {
      if (exposed.includes(prepared.exclusion.id) || prepared.parts.length > depth + 1) continue;
      // An exception at or above the folder lifts the exclusion for everything in it.
      if (prepared.except.some((except) => except.length <= depth && startsWith(parts, except))) continue;
      if (covers(prepared.parts.slice(0, depth), parts)) candidates.push(prepared);
    }
    if (candidates.length === 0) return undefined;
    return (name) =>
      candidates.some((c) => {
        // Shorter than a child: it covers the folder itself (checked above).
        const last = c.parts.length > depth ? c.parts[depth] : '*';
        if (last !== '*' && last !== name) return false;
        if (c.except.length === 0) return true;
        const child = [...parts, name];
        return !c.except.some((except) => startsWith(child, except));
      });
  }

  /** Exclusions whose path contains `hostPath` (for the compiler: a rule targeting a secret). */
  containing(hostPath: string): Exclusion[] {
    const parts = foldedComponents(hostPath, this.rules);
    return this.#prepared.filter((p) => covers(p.parts, parts) && !p.except.some((except) => startsWith(parts, except))).map((p) => p.exclusion);
  }

  fold(name: string): string {
    return foldName(name, this.rules);
  }
}

function covers(pattern: readonly string[], parts: readonly string[]): boolean {
  if (pattern.length > parts.length) return false;
  for (let i = 0; i < pattern.length; i++) if (pattern[i] !== '*' && pattern[i] !== parts[i]) return false;
  return true;
}

function startsWith(parts: readonly string[], prefix: readonly string[]): boolean {
  return prefix.length <= parts.length && prefix.every((part, i) => part === parts[i]);
}

const matchers = new WeakMap<CompiledTable, ExclusionMatcher>();

/** The matcher of a compiled table (cached: the table never changes). */
export function exclusionMatcher(table: CompiledTable): ExclusionMatcher {
  let matcher = matchers.get(table);
  if (!matcher) {
    matcher = new ExclusionMatcher(table.exclusions, { style: table.host.pathStyle, caseInsensitive: table.host.caseInsensitive });
    matchers.set(table, matcher);
  }
  return matcher;
}

/** Exclusion check for a host path resolved through `entry`. */
export function excludedBy(table: CompiledTable, entry: TableEntry, hostPath: string): Exclusion | undefined {
  return exclusionMatcher(table).match(hostPath, entry.exposes);
}
