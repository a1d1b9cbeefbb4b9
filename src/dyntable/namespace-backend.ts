// NamespaceBackend: the compiled table served to the 9P server as one file
// tree (the guest mounts it at table.mountPoint; backend path '/' is that
// mount point).
//
// - FIT entries (stick): the files store, users/<name>/files/ (layer-store.ts).
// - FET readonly entries: the host folder, read through the confined
//   primitives (confined-fs.ts); every change is EROFS.
// - FET cow entries: the host folder as the lower layer and the upper store,
//   users/<name>/upper/, on top. Every mutation (write, create, rename,
//   delete, chmod, chown, truncate, utimes, symlink, link, mkdir, mknod) lands
//   in the upper store: a host file is copied up on first change (content,
//   mode, owner and times preserved); deletions leave whiteouts; a directory
//   removed and made again is opaque; a renamed host directory is redirected.
// - Guest paths above entries are virtual read-only directories.
// - Excluded host paths (exclusions.ts) are invisible: ENOENT, never listed,
//   never merged, also when reached through a hard link on the host.
//
// The host is only ever lstat'ed, listed, read (O_NOATIME where permitted)
// and readlink'ed: its files keep their content, mode and mtime.
import { constants as C, lstatSync } from 'node:fs';
import type { Dir, Dirent } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { lstat, opendir, readdir, realpath, statfs } from 'node:fs/promises';
import type { NodeContent } from './content-store.ts';
import { join } from 'node:path';
import { platformOf } from '../platform/current.ts';
import { ExclusionMatcher } from './exclusions.ts';
import { foldedComponents } from './host-paths.ts';
import { type StoreEntry, LayerStore, nowTimespec, type StoreNode } from './layer-store.ts';
import {
  AT_REMOVEDIR,
  Errno,
  ErrnoError,
  OpenFlags,
  QidType,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  SetattrMask,
  childPath,
  direntTypeOfMode,
  qidTypeOfMode,
  sameTimes,
} from '../ninep/backend.ts';
import type { NinepAttr, NinepBackend, NinepDirent, NinepHandle, NinepStatfs, Qid, SetattrRequest } from '../ninep/backend.ts';
import { type ConfinedFile, ConfinedRoot, lstatNames } from './confined-fs.ts';
import { HostFsPool } from './host-fs-pool.ts';
import { LISTING_READ_AHEAD, type ListedEntry, ListingBudget, type ListingPhase, StreamedListing, arrayPhase } from './namespace-listing.ts';
import { lookupEntry } from './resolver.ts';
import type { StoreQuota } from './store-quota.ts';
import type { CompiledTable, EntryMode, Exclusion, TableEntry } from './rules.ts';
import { SerialQueue } from '../primitives/serial-queue.ts';

export interface NamespaceBackendOptions {
  table: CompiledTable;
  /** users/<name>/files: what FIT entries hold. */
  filesDir: string;
  /** users/<name>/upper: where changes to host-resolved paths land. */
  upperDir: string;
  /**
   * The user's at-rest key (sealed/keys.ts): files/ and upper/ are sealed
   * with keys derived from it (the session always gives it). Not kept: the
   * caller zeroes it.
   */
  atRestKey?: Buffer;
  /** What the guest may fill of the stick through files/ and upper/ (store-quota.ts); none without. */
  quota?: StoreQuota;
  /** Owner of virtual folders and new files (default: this process's uid/gid; 0 on Windows). */
  owner?: { uid: number; gid: number };
  /** Show host files as owned by `owner` (default: on Windows hosts, whose uids mean nothing to Linux). */
  mapHostOwner?: boolean;
}

/** One table entry as served: its store and/or its confined host root. */
interface Area {
  entry: TableEntry;
  mode: EntryMode;
  /** files (stick) or upper (cow); none for readonly. */
  store?: LayerStore;
  /** FET: the host folder, confined; undefined when it is missing on this host. */
  root?: ConfinedRoot;
  /** FET: the host folder as the rule names it (the root is its realpath). */
  declaredRoot?: string;
  /** Folded components of declaredRoot and of the root's realpath, for exclusion checks. */
  rootParts?: string[][];
  /** The exclusions that can apply inside this folder. */
  matcher?: ExclusionMatcher;
}

type Located =
  | { kind: 'virtual'; path: string; guest: string; children: string[] }
  | {
      kind: 'node';
      path: string;
      guest: string;
      area: Area;
      entry: Extract<StoreEntry, { kind: 'node' }>;
      node: StoreNode;
      lowerRel: string | null;
      reserved: string[];
      entryRoot: boolean;
    }
  | { kind: 'host'; path: string; guest: string; area: Area; lowerRel: string; st: BigIntStats; reserved: string[]; entryRoot: boolean };

const QID_TAG_UPPER = 1n << 62n;
const QID_TAG_FILES = 2n << 62n;
const QID_TAG_VIRTUAL = 3n << 62n;
const O_NOATIME = C.O_NOATIME ?? 0;
const EXCLUDED_INODE_BUDGET = 20_000;
/** Secret files re-checked for new hard links before a listing (#secretLinksOn), and how often. */
const SECRET_RECHECK_MAX = 1024;
const SECRET_RECHECK_MS = 1000;

const isNotFound = (e: ErrnoError) =>
  e.errno === Errno.ENOENT || e.errno === Errno.ENOTDIR || e.errno === Errno.ELOOP || e.errno === Errno.EINVAL || e.errno === Errno.ENAMETOOLONG;

function isDirMode(mode: number): boolean {
  return (mode & S_IFMT) === S_IFDIR;
}

function relJoin(rel: string, name: string): string {
  return `${rel}/${name}`;
}

/** ConfinedRoot guest path for a lower-relative path ('' is the root). */
function rootPath(rel: string): string {
  return rel === '' ? '/' : rel;
}

/** A file inside an excluded folder, as last lstat'ed. */
interface SecretFile {
  path: string;
  dev: bigint;
  ino: bigint;
  nlink: bigint;
}

const DT_UNKNOWN = 0;
const DT_DIR = 4;
const DT_REG = 8;
const DT_LNK = 10;

/** Linux d_type of a host directory entry (DT_UNKNOWN when the host did not say). */
function direntTypeOf(d: Dirent): number {
  if (d.isFile()) return DT_REG;
  if (d.isDirectory()) return DT_DIR;
  if (d.isSymbolicLink()) return DT_LNK;
  if (d.isFIFO()) return 1;
  if (d.isSocket()) return 12;
  if (d.isCharacterDevice()) return 2;
  if (d.isBlockDevice()) return 6;
  return DT_UNKNOWN;
}

/**
 * The qid path of a host entry (the inode number the guest sees, in its
 * readdir's d_ino and its stat alike): a 61-bit FNV-1a hash of where the
 * entry is (its table entry and path below the host folder), not the host
 * inode, so a listing needs no lstat to give it (QEMU takes d_ino from
 * getdents, which Node does not expose). The same path keeps its number in
 * every session; bit 61 set and the tag bits clear, a range that store
 * nodes and virtual folders never use. Two host names of one file are two
 * inodes to the guest (as on a FUSE file system without inode numbers).
 */
function hostQidPath(where: string): bigint {
  let h1 = 0x811c9dc5;
  let h2 = 0x050c5d1f;
  for (let i = 0; i < where.length; i++) {
    const c = where.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x01000193) ^ (h2 >>> 15);
  }
  return (1n << 61n) | (BigInt((h1 >>> 0) & 0x1fffffff) << 32n) | BigInt(h2 >>> 0);
}

export class NamespaceBackend implements NinepBackend {
  readonly table: CompiledTable;
  readonly files: LayerStore;
  readonly upper: LayerStore;
  readonly #areas = new Map<string, Area>();
  readonly #matcher: ExclusionMatcher;
  /** dev:ino of regular files inside excluded folders → exclusion ids (hard links to secrets stay hidden). */
  readonly #excludedInodes = new Map<string, string[]>();
  /** The files of #excludedInodes by path, and the devices they are on: whether a listing must lstat its regular files. */
  readonly #secretFiles: SecretFile[] = [];
  readonly #secretDevs = new Set<bigint>();
  /** Devices where a secret file has another name now (or may: it changed or vanished), as of #linksCheckedAt. */
  #linkedSecretDevs = new Set<bigint>();
  #linksCheckedAt = -Infinity;
  /** Host entries the listings lstat'ed (tests: none for a local folder when no secret has another name). */
  readonly listingCounters = { lstats: 0 };
  readonly #virtualQids = new Map<string, bigint>();
  readonly #owner: { uid: number; gid: number };
  readonly #mapHostOwner: boolean;
  /** Serialises namespace mutations, so check-then-change sequences never interleave. */
  readonly #mutex = new SerialQueue();
  readonly #started = nowTimespec();
  readonly #caseCache = new Map<string, { names: Set<string>; expires: number }>();
  /** Listing read-ahead of all directory handles together (namespace-listing.ts). */
  readonly #listingBudget = new ListingBudget(LISTING_READ_AHEAD);
  #flushTimer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(options: NamespaceBackendOptions, files: LayerStore, upper: LayerStore, matcher: ExclusionMatcher) {
    this.table = options.table;
    this.files = files;
    this.upper = upper;
    this.#matcher = matcher;
    this.#owner = options.owner ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    this.#mapHostOwner = options.mapHostOwner ?? options.table.host.os === 'windows';
  }

  static async open(options: NamespaceBackendOptions): Promise<NamespaceBackend> {
    const { table } = options;
    // Exclusions also under their real paths: a home reached through a
    // symlink must not unhide ~/.ssh.
    const extended: Exclusion[] = [...table.exclusions];
    for (const e of table.exclusions) {
      const wildcard = e.hostPath.endsWith('*');
      const base = wildcard ? e.hostPath.slice(0, -1) : e.hostPath;
      const real = await realpath(base).catch(() => undefined);
      if (real && real !== base.replace(/[\\/]$/, ''))
        extended.push({
          ...e,
          hostPath: wildcard ? join(real, '*') : real,
          except: [...e.except, ...(await Promise.all(e.except.map((p) => realpath(p).catch(() => p))))],
        });
    }
    const matcher = new ExclusionMatcher(extended, { style: table.host.pathStyle, caseInsensitive: table.host.caseInsensitive });
    // One quota for files/ and upper/ together (store-quota.ts): growth past it is ENOSPC.
    const sealing = { ...(options.atRestKey ? { key: options.atRestKey } : {}), ...(options.quota ? { quota: options.quota } : {}) };
    const files = await LayerStore.open(options.filesDir, sealing);
    const upper = await LayerStore.open(options.upperDir, sealing).catch(async (error: unknown) => {
      await files.close();
      throw error;
    });
    const backend = new NamespaceBackend(options, files, upper, matcher);
    try {
      for (const entry of table.entries) await backend.#openArea(entry);
      await backend.#collectExcludedInodes(extended);
    } catch (error) {
      await files.close();
      await upper.close();
      throw error;
    }
    backend.#flushTimer = setInterval(() => {
      files.flush();
      upper.flush();
    }, 2000);
    backend.#flushTimer.unref();
    return backend;
  }

  async #openArea(entry: TableEntry): Promise<void> {
    if (entry.target.kind === 'stick') {
      const area: Area = { entry, mode: 'stick', store: this.files };
      if (!this.files.get(entry.guestPath)) {
        // The launcher's own folder: a full quota must not keep the namespace from opening.
        const node = await this.files.createNode(this.#newNodeFields(S_IFDIR | 0o755, this.#owner.gid), { unmetered: true });
        this.files.setEntry({ path: entry.guestPath, kind: 'node', node: node.id, opaque: true, redirect: null });
      }
      this.#areas.set(entry.id, area);
      return;
    }
    const area: Area = { entry, mode: entry.mode, declaredRoot: entry.target.hostPath, ...(entry.mode === 'cow' ? { store: this.upper } : {}) };
    try {
      const root = await ConfinedRoot.open(entry.target.hostPath);
      // The rule was checked when compiled; the folder may since have become
      // a symlink into something excluded.
      if (!this.#matcher.match(root.root, entry.exposes)) {
        area.root = root;
        const rules = this.#matcher.rules;
        area.rootParts = [foldedComponents(entry.target.hostPath, rules), foldedComponents(root.root, rules)];
        area.matcher = this.#matcher.narrow(area.rootParts);
      }
    } catch {
      // Missing on this host now: the entry shows as an empty folder.
    }
    this.#areas.set(entry.id, area);
  }

  /** Bounded walk of the excluded folders, remembering their files' identities. */
  async #collectExcludedInodes(exclusions: readonly Exclusion[]): Promise<void> {
    let budget = EXCLUDED_INODE_BUDGET;
    const walk = async (path: string, ids: string, depth: number): Promise<void> => {
      if (budget <= 0) return;
      budget--;
      const st = await lstat(path, { bigint: true }).catch(() => undefined);
      if (!st) return;
      if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        this.#excludedInodes.set(key, [...(this.#excludedInodes.get(key) ?? []), ids]);
        this.#secretFiles.push({ path, dev: st.dev, ino: st.ino, nlink: st.nlink });
        this.#secretDevs.add(st.dev);
      } else if (st.isDirectory() && depth < 8) {
        const names = await readdir(path).catch(() => [] as string[]);
        for (const name of names) await walk(join(path, name), ids, depth + 1);
      }
    };
    // Pseudo file systems hold no hard links to anything else (and walking /proc would spend the budget).
    for (const e of exclusions) if (!e.hostPath.includes('*') && e.category !== 'other-users' && e.category !== 'pseudo-fs') await walk(e.hostPath, e.id, 0);
  }

  // ---------------------------------------------------------------------
  // Locating a path.

  #toGuest(path: string): string {
    const mount = this.table.mountPoint;
    if (mount === '/') return path;
    return path === '/' ? mount : mount + path;
  }

  #isExcludedLower(area: Area, rel: string): boolean {
    const matcher = area.matcher;
    if (!area.rootParts || !matcher || matcher.empty) return false;
    const parts =
      rel === ''
        ? []
        : rel
            .slice(1)
            .split('/')
            .map((name) => matcher.fold(name));
    return area.rootParts.some((root) => matcher.matchComponents(parts.length ? [...root, ...parts] : root, area.entry.exposes) !== undefined);
  }

  #isExcludedInode(area: Area, st: BigIntStats): boolean {
    if (!st.isFile() || st.nlink < 2n) return false;
    const ids = this.#excludedInodes.get(`${st.dev}:${st.ino}`);
    return ids !== undefined && ids.some((id) => !area.entry.exposes.includes(id));
  }

  /**
   * Whether a listing on device `dev` must lstat its regular files to hide
   * host hard links to secrets (#isExcludedInode). Only if a secret file is
   * on that device and has (or may have) another name: the secrets are
   * lstat'ed again at most once a second, so a link the host makes during
   * the session is kept out of listings from the next second on (a walk,
   * getattr or open checks every file's inode at once, so its content is
   * never served). With more secrets than are cheap to re-check, listings
   * on their device always lstat.
   */
  #secretLinksOn(dev: bigint): boolean {
    if (!this.#secretDevs.has(dev)) return false;
    if (this.#secretFiles.length > SECRET_RECHECK_MAX) return true;
    const now = performance.now();
    if (now - this.#linksCheckedAt >= SECRET_RECHECK_MS) {
      const linked = new Set<bigint>();
      const kept: SecretFile[] = [];
      for (const secret of this.#secretFiles) {
        let st: BigIntStats | undefined;
        try {
          st = lstatSync(secret.path, { bigint: true, throwIfNoEntry: false });
        } catch {
          st = undefined;
        }
        if (st && st.ino === secret.ino && st.dev === secret.dev) {
          secret.nlink = st.nlink;
          kept.push(secret);
          if (st.nlink >= 2n) linked.add(secret.dev);
        } else if (secret.nlink >= 2n) {
          // Gone or replaced while it had other names: they may live on.
          kept.push(secret);
          linked.add(secret.dev);
        }
        // Gone or replaced with no other name when last seen (a removed
        // file, a rename): nothing left to hide (#isExcludedInode hides
        // only inodes with two names or more).
      }
      this.#secretFiles.splice(0, this.#secretFiles.length, ...kept);
      this.#secretDevs.clear();
      for (const secret of kept) this.#secretDevs.add(secret.dev);
      this.#linkedSecretDevs = linked;
      this.#linksCheckedAt = now;
    }
    return this.#linkedSecretDevs.has(dev);
  }

  /**
   * Whether a child of the lower folder `rel` is excluded, compiled once per
   * listing: undefined when nothing in it can be (the usual case).
   */
  #childExclusion(area: Area, rel: string): ((name: string) => boolean) | undefined {
    const matcher = area.matcher;
    if (!area.rootParts || !matcher || matcher.empty) return undefined;
    const parts =
      rel === ''
        ? []
        : rel
            .slice(1)
            .split('/')
            .map((name) => matcher.fold(name));
    const tests = area.rootParts.map((root) => matcher.childTest([...root, ...parts], area.entry.exposes)).filter((t) => t !== undefined);
    if (tests.length === 0) return undefined;
    return (name) => {
      const folded = matcher.fold(name);
      return tests.some((t) => t(folded));
    };
  }

  /** Case-insensitive hosts answer lstat for any spelling: insist on the exact name. */
  async #exactNameExists(area: Area, rel: string): Promise<boolean> {
    if (!this.table.host.caseInsensitive || rel === '') return true;
    const i = rel.lastIndexOf('/');
    const parent = rel.slice(0, i);
    const name = rel.slice(i + 1);
    const key = `${area.entry.id}\0${parent}`;
    const now = Date.now();
    let cached = this.#caseCache.get(key);
    if (!cached || cached.expires < now) {
      const names = await area.root!.shared(async () => {
        await area.root!.verifyDir(rootPath(parent));
        return readdir(area.root!.hostPath(rootPath(parent)));
      });
      cached = { names: new Set(names), expires: now + 1000 };
      if (this.#caseCache.size > 1000) this.#caseCache.clear();
      this.#caseCache.set(key, cached);
    }
    return cached.names.has(name);
  }

  /** lstat of a lower path, or undefined when absent, excluded or unreachable. */
  async #lowerStat(area: Area, rel: string): Promise<BigIntStats | undefined> {
    if (!area.root || this.#isExcludedLower(area, rel)) return undefined;
    let st: BigIntStats | undefined;
    try {
      st = await area.root.lstatIfExists(rootPath(rel));
    } catch (error) {
      const e = ErrnoError.fromNode(error);
      if (isNotFound(e)) return undefined;
      throw e;
    }
    if (st === undefined) return undefined;
    if (!(await this.#exactNameExists(area, rel).catch(() => false))) return undefined;
    if (this.#isExcludedInode(area, st)) return undefined;
    return st;
  }

  /** Whether anything is at a lower path at all (exclusions ignored): decides whiteouts. */
  async #lowerPresent(area: Area, rel: string | null): Promise<boolean> {
    if (rel === null || !area.root) return false;
    try {
      return (await area.root.lstatIfExists(rootPath(rel))) !== undefined;
    } catch {
      return false;
    }
  }

  /**
   * Walk the upper store from the entry root down to `relative`: the entry at
   * the path, and where its host side is (null: none, the directory above is
   * opaque). Throws ENOENT below a whiteout, ENOTDIR below a non-directory.
   */
  #walkUpper(area: Area, relative: readonly string[]): { entry: StoreEntry | undefined; lowerRel: string | null } {
    const store = area.store!;
    let guest = area.entry.guestPath;
    let lowerRel: string | null = '';
    let entry = store.get(guest);
    for (const part of relative) {
      if (entry?.kind === 'whiteout') throw ErrnoError.of('ENOENT');
      if (entry?.kind === 'node' && !isDirMode(store.node(entry.node).mode)) throw ErrnoError.of('ENOTDIR');
      guest = guest === '/' ? `/${part}` : `${guest}/${part}`;
      lowerRel = lowerRel === null ? null : relJoin(lowerRel, part);
      entry = store.get(guest);
      if (entry?.kind === 'node') {
        if (entry.redirect !== null) lowerRel = entry.redirect;
        else if (entry.opaque) lowerRel = null;
      }
    }
    return { entry, lowerRel };
  }

  async #locate(path: string): Promise<Located> {
    const guest = this.#toGuest(path);
    const res = lookupEntry(this.table, guest);
    // The mount point itself always exists: with no entry at all (a host
    // without any of the known folders) the guest mounts an empty folder.
    if (res.kind === 'unmapped' && path === '/') return { kind: 'virtual', path, guest, children: [] };
    if (res.kind === 'unmapped') throw ErrnoError.of('ENOENT', `${path}: not in the namespace`);
    if (res.kind === 'virtual') return { kind: 'virtual', path, guest, children: res.children };
    const area = this.#areas.get(res.entry.id);
    if (!area) throw ErrnoError.of('ENOENT');
    const reserved = res.reservedChildren;
    const entryRoot = res.relative.length === 0;
    const virtual: Located = { kind: 'virtual', path, guest, children: reserved };
    let found: Located | undefined;
    try {
      found = await this.#locateInArea(area, res.relative, path, guest, reserved, entryRoot);
    } catch (error) {
      const e = ErrnoError.fromNode(error);
      if (!isNotFound(e)) throw e;
    }
    // Entries win over files: a path leading to a more specific entry is
    // always a directory, and an entry root that is missing is an empty one.
    if (!found) {
      if (reserved.length > 0 || entryRoot) return virtual;
      throw ErrnoError.of('ENOENT', `${path}: no such file`);
    }
    if (reserved.length > 0 && !this.#isDir(found)) return virtual;
    return found;
  }

  async #locateInArea(area: Area, relative: string[], path: string, guest: string, reserved: string[], entryRoot: boolean): Promise<Located | undefined> {
    if (area.mode === 'stick') {
      const entry = area.store!.get(guest);
      if (entry?.kind !== 'node') return undefined;
      // Every directory above must be one, too (the store is keyed by path).
      return { kind: 'node', path, guest, area, entry, node: area.store!.node(entry.node), lowerRel: null, reserved, entryRoot };
    }
    if (area.mode === 'readonly') {
      const rel = relative.length ? `/${relative.join('/')}` : '';
      const st = await this.#lowerStat(area, rel);
      return st ? { kind: 'host', path, guest, area, lowerRel: rel, st, reserved, entryRoot } : undefined;
    }
    const { entry, lowerRel } = this.#walkUpper(area, relative);
    if (entry?.kind === 'whiteout') return undefined;
    if (entry?.kind === 'node') return { kind: 'node', path, guest, area, entry, node: area.store!.node(entry.node), lowerRel, reserved, entryRoot };
    if (lowerRel === null) return undefined;
    const st = await this.#lowerStat(area, lowerRel);
    return st ? { kind: 'host', path, guest, area, lowerRel, st, reserved, entryRoot } : undefined;
  }

  #isDir(located: Located): boolean {
    if (located.kind === 'virtual') return true;
    if (located.kind === 'node') return isDirMode(located.node.mode);
    return located.st.isDirectory();
  }

  async #locateDir(path: string): Promise<Located> {
    const located = await this.#locate(path);
    if (!this.#isDir(located)) throw ErrnoError.of('ENOTDIR', `${path} is not a directory`);
    return located;
  }

  /** The area a change below `located` goes to, or EROFS. */
  #writable(located: Located): Area & { store: LayerStore } {
    if (located.kind === 'virtual') throw ErrnoError.of('EROFS', `${located.guest} is a virtual folder of the dynamic table: nothing can be created here`);
    if (located.area.mode === 'readonly' || !located.area.store) throw ErrnoError.of('EROFS', `${located.guest} is read-only (${located.area.entry.id})`);
    return located.area as Area & { store: LayerStore };
  }

  /** The host side a new or removed child of `dir` named `name` has (null: none). */
  #childLowerRel(dir: Located, name: string): string | null {
    if (dir.kind === 'virtual' || dir.area.mode !== 'cow' || dir.lowerRel === null) return null;
    return relJoin(dir.lowerRel, name);
  }

  // ---------------------------------------------------------------------
  // Attributes.

  /**
   * A host entry's qid path: the number of where it is (hostQidPath), so a
   * listing gives it without an lstat and its stat gives the same.
   */
  #hostQid(area: Area, rel: string): bigint {
    return hostQidPath(`${area.entry.id}\0${rel}`);
  }

  #nodeQidPath(store: LayerStore, node: StoreNode): bigint {
    return node.qid ?? (store === this.upper ? QID_TAG_UPPER : QID_TAG_FILES) | BigInt(node.id);
  }

  #virtualQid(guest: string): Qid {
    let path = this.#virtualQids.get(guest);
    if (path === undefined) {
      path = QID_TAG_VIRTUAL | BigInt(this.#virtualQids.size + 1);
      this.#virtualQids.set(guest, path);
    }
    return { type: qidTypeOfMode(S_IFDIR), version: 0, path };
  }

  #virtualAttr(guest: string): NinepAttr {
    const { sec, nsec } = this.#started;
    return {
      qid: this.#virtualQid(guest),
      mode: S_IFDIR | 0o555,
      uid: this.#owner.uid,
      gid: this.#owner.gid,
      nlink: 2,
      rdev: 0,
      size: 0,
      blksize: 4096,
      blocks: 0,
      ...sameTimes(sec, nsec),
    };
  }

  #hostAttr(area: Area, rel: string, st: BigIntStats): NinepAttr {
    const attr = area.root!.attrOf(st);
    attr.qid = { ...attr.qid, path: this.#hostQid(area, rel) };
    if (this.#mapHostOwner) {
      attr.uid = this.#owner.uid;
      attr.gid = this.#owner.gid;
    }
    return attr;
  }

  async #nodeAttr(store: LayerStore, node: StoreNode): Promise<NinepAttr> {
    return this.#nodeAttrSync(store, node);
  }

  /**
   * A store node's attributes. The size is the content file's, lstat'ed
   * synchronously: a metadata lookup on the stick takes microseconds, a trip
   * through libuv's thread pool tens (see ConfinedRoot.lstatLocked).
   */
  #nodeAttrSync(store: LayerStore, node: StoreNode): NinepAttr {
    const type = node.mode & S_IFMT;
    let size = 0;
    let blocks = 0;
    if (type === S_IFREG) {
      ({ size, blocks } = store.content.statSync(node.id));
    } else if (type === S_IFLNK) {
      size = Buffer.byteLength(node.target ?? '');
    } else if (type === S_IFDIR) {
      size = 4096;
      blocks = 8;
    }
    return {
      qid: { type: qidTypeOfMode(node.mode), version: (node.mtimeSec ^ node.mtimeNsec ^ size) >>> 0, path: this.#nodeQidPath(store, node) },
      mode: node.mode,
      uid: node.uid,
      gid: node.gid,
      nlink: isDirMode(node.mode) ? 2 : Math.max(1, node.nlink),
      rdev: node.rdev,
      size,
      blksize: 4096,
      blocks,
      atimeSec: node.atimeSec,
      atimeNsec: node.atimeNsec,
      mtimeSec: node.mtimeSec,
      mtimeNsec: node.mtimeNsec,
      ctimeSec: node.ctimeSec,
      ctimeNsec: node.ctimeNsec,
      btimeSec: node.btimeSec,
      btimeNsec: node.btimeNsec,
    };
  }

  async #attrOf(located: Located): Promise<NinepAttr> {
    if (located.kind === 'virtual') return this.#virtualAttr(located.guest);
    if (located.kind === 'host') return this.#hostAttr(located.area, located.lowerRel, located.st);
    return this.#nodeAttr(located.area.store!, located.node);
  }

  async getattr(path: string): Promise<NinepAttr> {
    return this.#attrOf(await this.#locate(path));
  }

  // ---------------------------------------------------------------------
  // Directory listings (merged).

  /**
   * The phases of a merged listing of `located` (namespace-listing.ts): the
   * names a table entry reserves, then the upper store's entries, then the
   * host folder's names that none of those shadow, read in batches.
   */
  #listingPhases(located: Located): ListingPhase[] {
    const reserved = located.kind === 'virtual' ? located.children : located.reserved;
    const reservedSet = new Set(reserved);
    const phases: ListingPhase[] = [];
    if (reserved.length > 0) {
      phases.push(
        arrayPhase(async () => {
          const out: ListedEntry[] = [];
          for (const name of reserved) {
            const attr = await this.getattr(childPath(located.path, name)).catch(() => undefined);
            if (attr) out.push({ name, qid: attr.qid, type: direntTypeOfMode(attr.mode), attr: () => attr });
          }
          return out;
        }),
      );
    }
    if (located.kind === 'virtual') return phases;
    const area = located.area;
    const store = area.store;
    const upper = store && (located.kind === 'node' || area.mode === 'cow') ? store : undefined;
    if (upper) phases.push(this.#upperPhase(upper, located.guest, reservedSet));
    const lowerRel = located.kind === 'host' ? located.lowerRel : area.mode === 'cow' ? located.lowerRel : null;
    if (lowerRel !== null && area.root) phases.push(this.#lowerPhase(area, lowerRel, located.guest, upper, reservedSet));
    return phases;
  }

  /** The upper store's entries below `guest`, by name, a page at a time (whiteouts skipped). */
  #upperPhase(store: LayerStore, guest: string, reserved: ReadonlySet<string>): ListingPhase {
    let after = '';
    let done = false;
    return {
      get done() {
        return done;
      },
      next: async (max) => {
        const out: ListedEntry[] = [];
        while (!done && out.length < max) {
          const page = store.childrenAfter(guest, after, max - out.length);
          if (page.length < max - out.length) done = true;
          for (const entry of page) {
            const name = entry.path.slice(entry.path.lastIndexOf('/') + 1);
            after = name;
            if (entry.kind === 'whiteout' || reserved.has(name)) continue;
            const node = store.node(entry.node);
            out.push({
              name,
              qid: { type: qidTypeOfMode(node.mode), version: 0, path: this.#nodeQidPath(store, node) },
              type: direntTypeOfMode(node.mode),
              attr: () => this.#nodeAttrSync(store, node),
            });
          }
        }
        return out;
      },
      close: async () => {
        done = true;
      },
    };
  }

  /**
   * A host folder's names, streamed from its opened descriptor (confined:
   * through /proc/self/fd on Linux). Names the upper store has (copied up,
   * created, whited out) or an entry reserves are left out, and so is
   * everything excluded: by path with a test compiled once for the folder,
   * and hard links to secrets by inode.
   *
   * A local folder's entries come with their types (d_type), so most need
   * no lstat: their qid paths are the number of where they are
   * (hostQidPath, which their stat gives too), and the 9P server's
   * attribute cache is not primed for them. An lstat is
   * left for entries without a type and, where a secret has another name on
   * the folder's device (#secretLinksOn), for regular files. Folders on
   * mounts that may hang are listed and lstat'ed on the pool's workers.
   */
  #lowerPhase(area: Area, rel: string, guest: string, upper: LayerStore | undefined, reserved: ReadonlySet<string>): ListingPhase {
    const root = area.root!;
    const where = root.hostPath(rootPath(rel));
    /** Names (with d_type where known), a batch at a time: from a Dir here, or from the pool's worker for a folder on a mount that may hang. */
    interface Names {
      read(max: number): Promise<{ names: string[]; types: number[] | undefined; done: boolean }>;
      close(): Promise<void>;
    }
    let opened:
      { file: ConfinedFile; names: Names; base: string; slow: boolean; excluded: ((name: string) => boolean) | undefined; linkCheck: boolean } | undefined;
    let done = false;
    const open = async () => {
      let file: ConfinedFile;
      try {
        file = await root.openFile(rootPath(rel), C.O_RDONLY);
      } catch (error) {
        const e = ErrnoError.fromNode(error);
        if (isNotFound(e)) return undefined;
        throw e;
      }
      if (!file.isDirectory) {
        await file.close();
        return undefined;
      }
      const viaFd = platformOf()?.procSelfFd === true && file.fd !== undefined;
      const base = viaFd ? `/proc/self/fd/${file.fd}` : where;
      const slow = root.pool.isSlow(where);
      try {
        let names: Names;
        if (slow) {
          const id = await root.pool.opendir(base, where);
          names = { read: async (max) => ({ ...(await root.pool.dirRead(id, max, where)), types: undefined }), close: () => root.pool.dirClose(id, where) };
        } else {
          const dir: Dir = await (viaFd
            ? opendir(base, { bufferSize: 32 })
            : root.shared(async () => {
                await root.verifyDir(rootPath(rel));
                return opendir(base, { bufferSize: 32 });
              }));
          names = {
            // Synchronous, like the lstats that follow: a local getdents takes
            // microseconds, a trip through libuv's busy thread pool per 32
            // names took 2 s for 10,000 here under load. (Mounts that may
            // hang are read on the pool above.)
            read: async (max) => {
              const out: string[] = [];
              const types: number[] = [];
              while (out.length < max) {
                const d = dir.readSync();
                if (d === null) return { names: out, types, done: true };
                out.push(d.name);
                types.push(direntTypeOf(d));
              }
              return { names: out, types, done: false };
            },
            close: () => dir.close().catch(() => {}),
          };
        }
        return { file, names, base, slow, excluded: this.#childExclusion(area, rel), linkCheck: !slow && this.#secretLinksOn(file.stat.dev) };
      } catch (error) {
        await file.close();
        throw ErrnoError.fromNode(error);
      }
    };
    const close = async () => {
      done = true;
      const o = opened;
      opened = undefined;
      await o?.names.close();
      await o?.file.close();
    };
    const lstatOf = (o: NonNullable<typeof opened>, names: string[]) =>
      o.slow
        ? root.pool.lstatMany(o.base, names)
        : platformOf()?.procSelfFd
          ? lstatNames(o.base, names)
          : root.shared(async () => {
              await root.verifyDir(rootPath(rel));
              return lstatNames(o.base, names);
            });
    const withStat = (name: string, st: BigIntStats): ListedEntry | undefined => {
      if (this.#isExcludedInode(area, st)) return undefined;
      const mode = Number(st.mode) & 0o177777;
      const childRel = relJoin(rel, name);
      return {
        name,
        qid: { type: qidTypeOfMode(mode), version: 0, path: this.#hostQid(area, childRel) },
        type: direntTypeOfMode(mode),
        attr: () => this.#hostAttr(area, childRel, st),
      };
    };
    const relPrefix = `${area.entry.id}\0${rel}/`;
    return {
      get done() {
        return done;
      },
      next: async (max) => {
        if (done) return [];
        opened ??= await open();
        if (!opened) {
          done = true;
          return [];
        }
        const o = opened;
        const out: ListedEntry[] = [];
        while (!done && out.length < max) {
          const got = await o.names.read(max - out.length).catch((error: unknown) => {
            throw ErrnoError.fromNode(error);
          });
          if (got.done) done = true;
          const names: string[] = [];
          const types: number[] = [];
          // Most host folders have nothing copied up, created or whited out in them.
          const shadows = upper !== undefined && upper.hasChildren(guest);
          for (let i = 0; i < got.names.length; i++) {
            const name = got.names[i]!;
            if (reserved.has(name) || (shadows && upper.get(childPath(guest, name)) !== undefined) || o.excluded?.(name)) continue;
            names.push(name);
            types.push(got.types?.[i] ?? DT_UNKNOWN);
          }
          if (names.length === 0) continue;
          // Which entries need an lstat: without a type, or a regular file that could be a secret's other name.
          const needed: number[] = [];
          for (let i = 0; i < names.length; i++) {
            const type = types[i]!;
            if (type === DT_UNKNOWN || (type === DT_REG && o.linkCheck)) needed.push(i);
          }
          this.listingCounters.lstats += needed.length;
          const stats = needed.length === 0 ? [] : await lstatOf(o, needed.length === names.length ? names : needed.map((i) => names[i]!));
          let k = 0;
          for (let i = 0; i < names.length; i++) {
            const name = names[i]!;
            if (needed[k] === i) {
              const st = stats[k++];
              const entry = st ? withStat(name, st) : undefined;
              if (entry) out.push(entry);
              continue;
            }
            const type = types[i]!;
            out.push({
              name,
              qid: { type: type === DT_DIR ? QidType.DIR : type === DT_LNK ? QidType.SYMLINK : QidType.FILE, version: 0, path: hostQidPath(relPrefix + name) },
              type,
            });
          }
        }
        if (done) await close();
        return out;
      },
      close,
    };
  }

  /** Whether a directory lists nothing (rmdir, rename over a folder). */
  async #isEmptyDir(located: Located): Promise<boolean> {
    const listing = new StreamedListing(() => this.#listingPhases(located), this.#listingBudget);
    try {
      return (await listing.read(0, 1)).length === 0;
    } finally {
      await listing.close();
    }
  }

  // ---------------------------------------------------------------------
  // Copy-up.

  #newNodeFields(mode: number, gid: number): Omit<StoreNode, 'id' | 'nlink'> {
    const { sec, nsec } = nowTimespec();
    return {
      mode,
      uid: this.#owner.uid,
      gid,
      rdev: 0,
      target: null,
      qid: null,
      ...sameTimes(sec, nsec),
    };
  }

  /** Open a host file for reading without touching its atime where the host allows. */
  async #openHostRead(area: Area, rel: string): Promise<ConfinedFile> {
    try {
      return await area.root!.openFile(rootPath(rel), C.O_RDONLY | O_NOATIME);
    } catch (error) {
      const e = ErrnoError.fromNode(error);
      if (O_NOATIME && e.errno === Errno.EPERM) return area.root!.openFile(rootPath(rel), C.O_RDONLY);
      throw e;
    }
  }

  /**
   * Copy a host file or folder into the upper store at its guest path:
   * content (holes stay holes), mode, owner and times. Folders copy only
   * their attributes (their children stay merged). Call with the mutex held.
   */
  async #copyUp(located: Extract<Located, { kind: 'host' }>, withContent = true): Promise<Extract<Located, { kind: 'node' }>> {
    const area = this.#writable(located);
    const st = located.st;
    const attr = this.#hostAttr(area, located.lowerRel, st);
    const fields: Omit<StoreNode, 'id' | 'nlink'> = {
      mode: attr.mode,
      uid: attr.uid,
      gid: attr.gid,
      rdev: st.isCharacterDevice() || st.isBlockDevice() ? attr.rdev : 0,
      target: null,
      // The guest keeps seeing the same inode number (its host path's).
      qid: this.#hostQid(area, located.lowerRel),
      atimeSec: attr.atimeSec,
      atimeNsec: attr.atimeNsec,
      mtimeSec: attr.mtimeSec,
      mtimeNsec: attr.mtimeNsec,
      ctimeSec: attr.ctimeSec,
      ctimeNsec: attr.ctimeNsec,
      btimeSec: attr.btimeSec,
      btimeNsec: attr.btimeNsec,
    };
    if (st.isSymbolicLink()) fields.target = await area.root!.readlink(rootPath(located.lowerRel));
    const node = await area.store.createNode(fields);
    try {
      if (st.isFile() && withContent) await this.#copyContent(area, located, node.id);
    } catch (error) {
      area.store.discardNode(node.id);
      throw error;
    }
    const entry = { path: located.guest, kind: 'node' as const, node: node.id, opaque: false, redirect: null };
    area.store.setEntry(entry);
    return {
      kind: 'node',
      path: located.path,
      guest: located.guest,
      area,
      entry,
      node: area.store.node(node.id),
      lowerRel: located.lowerRel,
      reserved: located.reserved,
      entryRoot: located.entryRoot,
    };
  }

  async #copyContent(area: Area, located: Extract<Located, { kind: 'host' }>, node: number): Promise<void> {
    const source = await this.#openHostRead(area, located.lowerRel);
    let out: NodeContent | undefined;
    try {
      if (source.stat.ino !== located.st.ino || source.stat.dev !== located.st.dev)
        throw ErrnoError.of('EAGAIN', `${located.path} changed on the host while it was copied`);
      out = await area.store!.content.open(node);
      const chunk = 1 << 20;
      const buf = Buffer.allocUnsafe(chunk);
      const zero = Buffer.alloc(chunk);
      let position = 0;
      for (;;) {
        const n = await source.read(buf, position);
        if (n === 0) break;
        const data = buf.subarray(0, n);
        // Runs of zeros are not written: holes stay holes (a sparse 1 GiB file costs nothing).
        if (!data.equals(zero.subarray(0, n))) await out.write(data, position);
        position += n;
      }
      await out.truncate(position);
    } finally {
      await out?.close();
      await source.close();
    }
  }

  async #ensureNode(located: Located): Promise<Extract<Located, { kind: 'node' }>> {
    if (located.kind === 'node') return located;
    if (located.kind === 'virtual') throw ErrnoError.of('EROFS', `${located.guest} is a virtual folder of the dynamic table`);
    return this.#copyUp(located);
  }

  /** A directory's content changed: its mtime and ctime are now (copying a host folder's attributes up). */
  async #touchDir(dir: Located): Promise<void> {
    if (dir.kind === 'virtual') return;
    const node = dir.kind === 'node' ? dir : await this.#copyUp(dir);
    const { sec, nsec } = nowTimespec();
    dir.area.store!.updateNode(node.node.id, { mtimeSec: sec, mtimeNsec: nsec, ctimeSec: sec, ctimeNsec: nsec });
  }

  async #assertAbsent(path: string): Promise<void> {
    try {
      await this.#locate(path);
    } catch (error) {
      const e = ErrnoError.fromNode(error);
      if (e.errno === Errno.ENOENT) return;
      throw e;
    }
    throw ErrnoError.of('EEXIST', `${path} exists`);
  }

  /** Create a named node in `dirPath` (create, mkdir, mknod, symlink). */
  async #createEntry(dirPath: string, name: string, fields: Omit<StoreNode, 'id' | 'nlink'>): Promise<Extract<Located, { kind: 'node' }>> {
    const dir = await this.#locateDir(dirPath);
    const area = this.#writable(dir);
    const path = childPath(dirPath, name);
    await this.#assertAbsent(path);
    const guest = childPath(dir.guest, name);
    const store = area.store;
    // A host folder gets its attributes copied up first; then the node, its
    // entry and the folder's new mtime are one transaction.
    const dirNode = dir.kind === 'node' ? dir : dir.kind === 'host' ? await this.#copyUp(dir) : undefined;
    const { node, entry } = store.transaction(() => {
      const node = store.createNodeSync(fields);
      // A folder made by the guest never shows host files of the same name
      // (after rmdir + mkdir it must start empty): opaque.
      const entry = { path: guest, kind: 'node' as const, node: node.id, opaque: isDirMode(fields.mode), redirect: null };
      store.setEntry(entry);
      if (dirNode) {
        const { sec, nsec } = nowTimespec();
        store.updateNode(dirNode.node.id, { mtimeSec: sec, mtimeNsec: nsec, ctimeSec: sec, ctimeNsec: nsec });
      }
      return { node, entry };
    });
    return { kind: 'node', path, guest, area, entry, node: area.store.node(node.id), lowerRel: null, reserved: [], entryRoot: false };
  }

  // ---------------------------------------------------------------------
  // NinepBackend.

  async setattr(path: string, request: SetattrRequest): Promise<void> {
    const v = request.valid;
    if ((v & ~SetattrMask.CTIME) === 0) {
      await this.#locate(path);
      return;
    }
    await this.#mutex.run(async () => {
      const located = await this.#locate(path);
      this.#writable(located);
      const target = await this.#ensureNode(located);
      const { node, area } = target;
      const store = area.store!;
      const now = nowTimespec();
      const patch: Partial<StoreNode> = { ctimeSec: now.sec, ctimeNsec: now.nsec };
      if (v & SetattrMask.MODE) patch.mode = (node.mode & S_IFMT) | (request.mode & 0o7777);
      if (v & SetattrMask.UID) patch.uid = request.uid;
      if (v & SetattrMask.GID) patch.gid = request.gid;
      if (v & SetattrMask.SIZE) {
        if (isDirMode(node.mode)) throw ErrnoError.of('EISDIR');
        if ((node.mode & S_IFMT) !== S_IFREG) throw ErrnoError.of('EINVAL');
        await store.content.truncate(node.id, request.size);
        patch.mtimeSec = now.sec;
        patch.mtimeNsec = now.nsec;
      }
      if (v & SetattrMask.ATIME) {
        patch.atimeSec = v & SetattrMask.ATIME_SET ? request.atimeSec : now.sec;
        patch.atimeNsec = v & SetattrMask.ATIME_SET ? request.atimeNsec : now.nsec;
      }
      if (v & SetattrMask.MTIME) {
        patch.mtimeSec = v & SetattrMask.MTIME_SET ? request.mtimeSec : now.sec;
        patch.mtimeNsec = v & SetattrMask.MTIME_SET ? request.mtimeNsec : now.nsec;
      }
      store.updateNode(node.id, patch);
    });
  }

  async open(path: string, flags: number): Promise<NinepHandle> {
    const wantsWrite = (flags & OpenFlags.ACCMODE) !== OpenFlags.RDONLY || (flags & OpenFlags.TRUNC) !== 0;
    let located = await this.#locate(path);
    if (this.#isDir(located)) {
      if (wantsWrite) throw ErrnoError.of('EISDIR', `${path} is a directory`);
      return new NamespaceDirHandle(this, located, await this.#attrOf(located));
    }
    if (flags & OpenFlags.DIRECTORY) throw ErrnoError.of('ENOTDIR', `${path} is not a directory`);
    const mode = located.kind === 'node' ? located.node.mode : located.kind === 'host' ? Number(located.st.mode) : S_IFDIR;
    if ((mode & S_IFMT) === S_IFLNK) throw ErrnoError.of('ELOOP', `${path} is a symlink`);
    if ((mode & S_IFMT) !== S_IFREG) throw ErrnoError.of('ENXIO', `${path}: special files are not served`);
    if (located.kind === 'host' && !wantsWrite) {
      const file = await this.#openHostRead(located.area, located.lowerRel);
      if (file.stat.ino !== located.st.ino || file.stat.dev !== located.st.dev) {
        await file.close();
        throw ErrnoError.of('EAGAIN', `${path} changed on the host while it was opened`);
      }
      return new HostFileHandle(this, located.area, located.lowerRel, file);
    }
    if (located.kind === 'host') {
      const host = located;
      located = await this.#mutex.run(async () => {
        // Someone may have copied it up meanwhile.
        const again = await this.#locate(path);
        if (again.kind !== 'host') return again;
        return this.#copyUp(again, (flags & OpenFlags.TRUNC) === 0 || host.st.size === 0n);
      });
    }
    if (located.kind !== 'node') throw ErrnoError.of('EIO');
    if (wantsWrite) this.#writable(located);
    return this.#openNode(located.area.store!, located.node, flags);
  }

  async #openNode(store: LayerStore, node: StoreNode, flags: number): Promise<NinepHandle> {
    const access = flags & OpenFlags.ACCMODE;
    const fh = await store.content.open(node.id);
    if (flags & OpenFlags.TRUNC) {
      await fh.truncate(0);
      store.touchForWrite(node.id);
    }
    store.retain(node.id);
    return new StoreFileHandle(this, store, node, fh, access !== OpenFlags.WRONLY, access !== OpenFlags.RDONLY, (flags & OpenFlags.APPEND) !== 0);
  }

  async create(dirPath: string, name: string, flags: number, mode: number, gid: number): Promise<NinepHandle> {
    const created = await this.#mutex.run(() => this.#createEntry(dirPath, name, this.#newNodeFields(S_IFREG | (mode & 0o7777), gid)));
    return this.#openNode(created.area.store!, created.node, flags & ~OpenFlags.TRUNC);
  }

  async mkdir(dirPath: string, name: string, mode: number, gid: number): Promise<Qid> {
    const created = await this.#mutex.run(() => this.#createEntry(dirPath, name, this.#newNodeFields(S_IFDIR | (mode & 0o7777), gid)));
    return (await this.#nodeAttr(created.area.store!, created.node)).qid;
  }

  async mknod(dirPath: string, name: string, mode: number, _major: number, _minor: number, gid: number): Promise<Qid> {
    const type = mode & S_IFMT;
    if (type === S_IFCHR || type === S_IFBLK) throw ErrnoError.of('EPERM', 'device nodes are not created in the namespace');
    if (type !== S_IFIFO && type !== S_IFSOCK && type !== S_IFREG && type !== 0) throw ErrnoError.of('EINVAL');
    const created = await this.#mutex.run(() => this.#createEntry(dirPath, name, this.#newNodeFields((type || S_IFREG) | (mode & 0o7777), gid)));
    return (await this.#nodeAttr(created.area.store!, created.node)).qid;
  }

  async symlink(dirPath: string, name: string, target: string, gid: number): Promise<Qid> {
    if (target.length === 0 || target.includes('\0')) throw ErrnoError.of('EINVAL', 'invalid symlink target');
    const created = await this.#mutex.run(() => this.#createEntry(dirPath, name, { ...this.#newNodeFields(S_IFLNK | 0o777, gid), target }));
    return (await this.#nodeAttr(created.area.store!, created.node)).qid;
  }

  async readlink(path: string): Promise<string> {
    const located = await this.#locate(path);
    if (located.kind === 'node' && (located.node.mode & S_IFMT) === S_IFLNK) return located.node.target ?? '';
    if (located.kind === 'host' && located.st.isSymbolicLink()) return located.area.root!.readlink(rootPath(located.lowerRel));
    throw ErrnoError.of('EINVAL', `${path} is not a symlink`);
  }

  async link(targetPath: string, dirPath: string, name: string): Promise<void> {
    await this.#mutex.run(async () => {
      const target = await this.#locate(targetPath);
      if (this.#isDir(target)) throw ErrnoError.of('EPERM', 'cannot hard-link a directory');
      const targetArea = this.#writable(target);
      const dir = await this.#locateDir(dirPath);
      const dirArea = this.#writable(dir);
      if (targetArea.store !== dirArea.store) throw ErrnoError.of('EXDEV', 'hard links cannot join the stick and a host folder');
      const path = childPath(dirPath, name);
      await this.#assertAbsent(path);
      const node = await this.#ensureNode(target);
      const now = nowTimespec();
      dirArea.store.setEntry({ path: childPath(dir.guest, name), kind: 'node', node: node.node.id, opaque: false, redirect: null });
      dirArea.store.updateNode(node.node.id, { ctimeSec: now.sec, ctimeNsec: now.nsec });
      await this.#touchDir(dir);
    });
  }

  async unlink(dirPath: string, name: string, flags: number): Promise<void> {
    await this.#mutex.run(async () => {
      const dir = await this.#locateDir(dirPath);
      const area = this.#writable(dir);
      const located = await this.#locate(childPath(dirPath, name));
      if (located.kind === 'virtual' || located.entryRoot || located.reserved.length > 0)
        throw ErrnoError.of('EBUSY', `${located.guest} is a dynamic table entry or leads to one`);
      const isDir = this.#isDir(located);
      if (flags & AT_REMOVEDIR) {
        if (!isDir) throw ErrnoError.of('ENOTDIR');
        if (!(await this.#isEmptyDir(located))) throw ErrnoError.of('ENOTEMPTY');
      } else if (isDir) {
        throw ErrnoError.of('EISDIR');
      }
      const store = area.store;
      const leaveWhiteout = await this.#lowerPresent(area, this.#childLowerRel(dir, name));
      store.transaction(() => {
        for (const entry of store.subtree(located.guest).reverse()) store.removeEntry(entry.path);
        if (leaveWhiteout) store.setEntry({ path: located.guest, kind: 'whiteout' });
      });
      await this.#touchDir(dir);
    });
  }

  async rename(fromDir: string, fromName: string, toDir: string, toName: string): Promise<void> {
    await this.#mutex.run(async () => {
      const fromPath = childPath(fromDir, fromName);
      const toPath = childPath(toDir, toName);
      const source = await this.#locate(fromPath);
      if (fromPath === toPath) return;
      if (toPath.startsWith(`${fromPath}/`)) throw ErrnoError.of('EINVAL', 'cannot move a directory into itself');
      if (source.kind === 'virtual' || source.entryRoot || source.reserved.length > 0)
        throw ErrnoError.of('EBUSY', `${source.guest} is a dynamic table entry or leads to one`);
      const srcDir = await this.#locateDir(fromDir);
      const dstDir = await this.#locateDir(toDir);
      const srcArea = this.#writable(srcDir);
      const dstArea = this.#writable(dstDir);
      if (srcArea.store !== dstArea.store) throw ErrnoError.of('EXDEV', 'cannot move between the stick and a host folder');
      const store = srcArea.store;
      const srcIsDir = this.#isDir(source);
      let dest: Located | undefined;
      try {
        dest = await this.#locate(toPath);
      } catch (error) {
        if (ErrnoError.fromNode(error).errno !== Errno.ENOENT) throw error;
      }
      if (dest) {
        if (dest.kind === 'virtual' || dest.entryRoot || dest.reserved.length > 0)
          throw ErrnoError.of('EBUSY', `${dest.guest} is a dynamic table entry or leads to one`);
        const dstIsDir = this.#isDir(dest);
        if (srcIsDir && !dstIsDir) throw ErrnoError.of('ENOTDIR');
        if (!srcIsDir && dstIsDir) throw ErrnoError.of('EISDIR');
        if (dstIsDir && !(await this.#isEmptyDir(dest))) throw ErrnoError.of('ENOTEMPTY');
        if (dest.kind === 'node' && source.kind === 'node' && dest.node.id === source.node.id) return;
      }
      const dstGuest = childPath(dstDir.guest, toName);
      const srcWhiteout = await this.#lowerPresent(srcArea, this.#childLowerRel(srcDir, fromName));

      let moving = source;
      if (srcIsDir && srcArea.mode === 'cow') {
        // A folder with host content moves by redirect: its upper entry
        // says where its host side is. That only works inside one entry.
        const lowerRel = moving.lowerRel;
        const hasLower = lowerRel !== null && (await this.#lowerStat(srcArea, lowerRel))?.isDirectory() === true;
        const crossEntry = srcArea !== dstArea;
        if (crossEntry && (hasLower || store.subtree(source.guest).some((e) => e.kind === 'node' && e.redirect !== null))) {
          throw ErrnoError.of('EXDEV', 'a folder with host content cannot move to another table entry');
        }
        const node = await this.#ensureNode(moving);
        store.setEntry({ ...node.entry, redirect: hasLower ? lowerRel : null, opaque: !hasLower });
        moving = node;
      } else if (!srcIsDir) {
        moving = await this.#ensureNode(moving);
      }
      store.transaction(() => {
        for (const entry of store.subtree(dstGuest).reverse()) store.removeEntry(entry.path);
        store.moveTree(moving.guest, dstGuest);
        if (srcWhiteout) store.setEntry({ path: moving.guest, kind: 'whiteout' });
      });
      const now = nowTimespec();
      const moved = store.get(dstGuest);
      if (moved?.kind === 'node') store.updateNode(moved.node, { ctimeSec: now.sec, ctimeNsec: now.nsec });
      await this.#touchDir(await this.#locateDir(fromDir));
      if (toDir !== fromDir) await this.#touchDir(await this.#locateDir(toDir));
    });
  }

  async statfs(path: string): Promise<NinepStatfs> {
    const located = await this.#locate(path);
    // Where changes would go: the stick, except for read-only host folders.
    const dir =
      located.kind !== 'virtual' && located.area.mode === 'readonly' && located.area.root
        ? located.area.root.root
        : located.kind !== 'virtual' && located.area.mode === 'stick'
          ? this.files.dir
          : this.upper.dir;
    const pool = HostFsPool.shared();
    // A read-only host folder on a mount that may hang: asked on the pool, with a deadline.
    const s = await (pool.isSlow(dir) ? pool.statfs(dir) : statfs(dir, { bigint: true })).catch((error: unknown) => {
      throw ErrnoError.fromNode(error);
    });
    return {
      type: 0x01021997,
      bsize: Number(s.bsize),
      blocks: Number(s.blocks),
      bfree: Number(s.bfree),
      bavail: Number(located.kind !== 'virtual' && located.area.mode === 'readonly' ? 0n : s.bavail),
      files: Number(s.files),
      ffree: Number(s.ffree),
      fsid: 0x706f636bn,
      namelen: 255,
    };
  }

  async xattrGet(path: string, _name: string): Promise<Uint8Array> {
    await this.#locate(path);
    throw ErrnoError.of('ENODATA', 'no extended attributes');
  }

  async xattrList(path: string): Promise<string[]> {
    await this.#locate(path);
    return [];
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#flushTimer) clearInterval(this.#flushTimer);
    await this.#mutex.run(async () => {
      await this.files.close();
      await this.upper.close();
    });
  }

  // For the handles.

  /** Entries the directory handles have read ahead, the most they may, and how often a listing was sought back (namespace-listing.ts). */
  get listingReadAhead(): { used: number; limit: number; seeks: number } {
    return { used: this.#listingBudget.used, limit: this.#listingBudget.limit, seeks: this.#listingBudget.seeks };
  }

  /** @internal */
  listingOf(located: Located): StreamedListing {
    return new StreamedListing(() => this.#listingPhases(located), this.#listingBudget);
  }

  /** @internal */
  async attrAgain(located: Located): Promise<NinepAttr> {
    if (located.kind === 'node') {
      const store = located.area.store!;
      return this.#nodeAttr(store, store.node(located.node.id));
    }
    if (located.kind === 'host') {
      const st = await located.area.root!.lstat(rootPath(located.lowerRel)).catch(() => located.st);
      return this.#hostAttr(located.area, located.lowerRel, st);
    }
    return this.#virtualAttr(located.guest);
  }

  /** @internal */
  qidOfNode(store: LayerStore, node: StoreNode): Qid {
    return { type: qidTypeOfMode(node.mode), version: (node.mtimeSec ^ node.mtimeNsec) >>> 0, path: this.#nodeQidPath(store, node) };
  }

  /** @internal */
  hostAttrOf(area: Area, rel: string, st: BigIntStats): NinepAttr {
    return this.#hostAttr(area, rel, st);
  }

  /** @internal */
  nodeAttrOf(store: LayerStore, node: StoreNode): Promise<NinepAttr> {
    return this.#nodeAttr(store, node);
  }
}

/** A directory: its merged listing, streamed (namespace-listing.ts). */
class NamespaceDirHandle implements NinepHandle {
  readonly qid: Qid;
  readonly #backend: NamespaceBackend;
  readonly #located: Located;
  readonly #listing: StreamedListing;

  constructor(backend: NamespaceBackend, located: Located, attr: NinepAttr) {
    this.#backend = backend;
    this.#located = located;
    this.#listing = backend.listingOf(located);
    this.qid = attr.qid;
  }

  async read(): Promise<number> {
    throw ErrnoError.of('EISDIR');
  }

  async write(): Promise<number> {
    throw ErrnoError.of('EISDIR');
  }

  readdir(offset: number, maxEntries: number): Promise<NinepDirent[]> {
    return this.#listing.read(offset, maxEntries);
  }

  getattr(): Promise<NinepAttr> {
    return this.#backend.attrAgain(this.#located);
  }

  /** A directory's entries in a store are rows of its database: fsync makes them durable. */
  async fsync(): Promise<void> {
    if (this.#located.kind !== 'virtual') await this.#located.area.store?.durable();
  }

  close(): Promise<void> {
    return this.#listing.close();
  }
}

/** A host file opened for reading (writes need a copy-up, which opens a store file instead). */
class HostFileHandle implements NinepHandle {
  readonly qid: Qid;
  readonly #backend: NamespaceBackend;
  readonly #area: Area;
  readonly #rel: string;
  readonly #file: ConfinedFile;

  constructor(backend: NamespaceBackend, area: Area, rel: string, file: ConfinedFile) {
    this.#backend = backend;
    this.#area = area;
    this.#file = file;
    this.#rel = rel;
    this.qid = backend.hostAttrOf(area, rel, file.stat).qid;
  }

  read(target: Uint8Array, position: number): Promise<number> {
    return this.#file.read(target, position);
  }

  async write(): Promise<number> {
    throw ErrnoError.of('EBADF', 'opened for reading');
  }

  async readdir(): Promise<NinepDirent[]> {
    throw ErrnoError.of('ENOTDIR');
  }

  async getattr(): Promise<NinepAttr> {
    return this.#backend.hostAttrOf(this.#area, this.#rel, await this.#file.fstat());
  }

  async fsync(): Promise<void> {}

  close(): Promise<void> {
    return this.#file.close();
  }
}

/** A regular file in a store (the stick's files or the upper layer). */
class StoreFileHandle implements NinepHandle {
  readonly qid: Qid;
  readonly #backend: NamespaceBackend;
  readonly #store: LayerStore;
  readonly #node: StoreNode;
  readonly #fh: NodeContent;
  readonly #readable: boolean;
  readonly #writable: boolean;
  readonly #append: boolean;
  #closed = false;

  constructor(backend: NamespaceBackend, store: LayerStore, node: StoreNode, fh: NodeContent, readable: boolean, writable: boolean, append: boolean) {
    this.#backend = backend;
    this.#store = store;
    this.#node = node;
    this.#fh = fh;
    this.#readable = readable;
    this.#writable = writable;
    this.#append = append;
    this.qid = backend.qidOfNode(store, node);
  }

  async read(target: Uint8Array, position: number): Promise<number> {
    if (!this.#readable) throw ErrnoError.of('EBADF', 'opened for writing only');
    try {
      return await this.#fh.read(target, position);
    } catch (error) {
      throw ErrnoError.fromNode(error);
    }
  }

  async write(data: Uint8Array, position: number): Promise<number> {
    if (!this.#writable) throw ErrnoError.of('EBADF', 'opened for reading only');
    try {
      const at = this.#append ? await this.#fh.size() : position;
      const done = await this.#fh.write(data, at);
      this.#store.touchForWrite(this.#node.id);
      return done;
    } catch (error) {
      throw ErrnoError.fromNode(error);
    }
  }

  async readdir(): Promise<NinepDirent[]> {
    throw ErrnoError.of('ENOTDIR');
  }

  getattr(): Promise<NinepAttr> {
    return this.#backend.nodeAttrOf(this.#store, this.#node);
  }

  async fsync(datasync: boolean): Promise<void> {
    try {
      await this.#fh.sync(datasync);
      // The content alone is not the file: its name is a row in the store.
      await this.#store.durable(this.#node.id);
    } catch (error) {
      throw ErrnoError.fromNode(error);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#fh.close().catch(() => {});
    this.#store.release(this.#node.id);
  }
}
