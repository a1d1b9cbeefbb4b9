// The guest registry: a hierarchical, typed key/value store in layers, read
// top-down session > host > user > defaults (docs/registry.md).
// `defaults` come from the payload's registry.reg and `session` from the
// HostProfile, both held in memory and never written; `user` and `host` (this
// host's fingerprint) live in the user's SQLite file on the stick.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { PayloadError, PocketError, RegFileError, RegistryCorruptError, RegistryError, RegistryLimitError, RegistryTypeError, StickError } from '../errors.ts';
import { MemoryLayer } from './memory-layer.ts';
import { decodeRegFile, parseReg, type RegFormat, type RegKeyEntry, type RegOperation, writeReg } from './reg-format.ts';
import { type IntegrityCheck, openChecked, type RegistryRecovery, writeLastGood } from './last-good-copy.ts';
import { RegistryStore } from './store.ts';
import {
  checkValue,
  checkValueName,
  foldCase,
  keyComponents,
  REG_LIMITS,
  type RegLayer,
  type RegType,
  type RegValue,
  type RegWritableLayer,
  type SessionFact,
  WRITABLE_LAYERS,
} from './value.ts';
import { HOST_KEY, wellKnownName, wellKnownType } from './well-known.ts';

export type { RegLayer, RegValue, RegWritableLayer, SessionFact } from './value.ts';
export type { RegistryRecovery } from './last-good-copy.ts';

export interface RegistryChange {
  key: string;
  /** The value that changed; absent when the key itself (and what is under it) changed. */
  name?: string;
  layer: RegLayer;
}

export interface GuestRegistryOptions {
  /** The user's registry file (users/<name>/registry.sqlite). */
  file: string;
  /** The payload's defaults (payload/<guest>/registry.reg); a missing file is an empty layer. */
  defaultsFile?: string;
  /** This host's fingerprint (src/platform/host-fingerprint.ts): names the `host` layer. */
  hostId: string;
  /** The session layer: facts from the HostProfile, never persisted. */
  session?: SessionFact[];
  /** How hard to check the file on open (default `quick`: PRAGMA quick_check). */
  check?: IntegrityCheck;
  /** Told when a damaged file was replaced (also kept in `registry.recovery`). */
  onRecovery?: (recovery: RegistryRecovery) => void;
  /** How often watchers look for commits by other processes (default 250 ms). */
  pollMs?: number;
  /** After a commit, refresh the last good copy when it is older than this (default 5 min; 0 = only on close). */
  backupIntervalMs?: number;
}

const HOST_ID = /^[A-Za-z0-9_.-]{1,128}$/;
/** More changes than this in one transaction are announced as one change of the root. */
const CHANGE_BURST = 256;

type Listener = (change: RegistryChange) => void;
/** The data type of a value of type T. */
export type RegData<T extends RegType> = { [V in RegValue as V['type']]: V['data'] }[T];

interface PendingChange {
  scope: string;
  key: string;
  name: string | null;
}

/**
 * `Host\` holds the session's facts about this host (the session layer, made
 * fresh at each launch): a value stored under it in another layer would only
 * hide the facts, so writing there is refused.
 */
function isSessionKey(parts: readonly string[]): boolean {
  return parts.length > 0 && foldCase(parts[0]!) === foldCase(HOST_KEY);
}

function refuseSessionKey(parts: readonly string[], key: string): void {
  if (isSessionKey(parts)) {
    throw new RegistryError(`${key} is under ${HOST_KEY}\\, the session's read-only facts about this host; nothing was written`, {
      hint: `${HOST_KEY}\\ is made fresh at each launch from the host probe; store your own values under another key`,
      details: { reason: 'read-only-key', key },
    });
  }
}

function writableLayer(layer: string): asserts layer is RegWritableLayer {
  if (!(WRITABLE_LAYERS as readonly string[]).includes(layer)) {
    throw new RegistryError(`the ${layer} layer cannot be written (writable layers: ${WRITABLE_LAYERS.join(', ')})`, {
      hint:
        layer === 'defaults'
          ? 'defaults ship with the payload; set the value in the user layer to override it'
          : layer === 'session'
            ? 'session facts come from this host and are never stored'
            : undefined,
      details: { reason: 'layer', layer },
    } as { hint?: string; details: Record<string, unknown> });
  }
}

function checkWellKnown(key: string, name: string, value: RegValue): void {
  const expected = wellKnownType(key, name);
  if (expected && expected !== value.type) {
    throw new RegistryTypeError(`${key}\\${name === '' ? '@' : name} must be of type ${expected}, not ${value.type}`, {
      hint: 'docs/registry.md lists the well-known values and their types',
    });
  }
}

/** SQLite failures as the typed errors a person can act on. */
function translate(error: unknown, file: string): unknown {
  if (error instanceof PocketError) return error;
  const code = (error as { errcode?: unknown }).errcode;
  if (typeof code !== 'number') return error;
  switch (code & 0xff) {
    case 5: // SQLITE_BUSY
    case 6: // SQLITE_LOCKED
      return new RegistryError(`the registry ${file} stayed busy (another launcher is writing it)`, {
        hint: 'try again in a moment',
        cause: error,
        details: { reason: 'busy' },
      });
    case 11: // SQLITE_CORRUPT
    case 26: // SQLITE_NOTADB
      return new RegistryCorruptError(`the registry ${file} is damaged (${(error as Error).message})`, {
        hint: 'the next start moves it aside and restores its last good copy',
        cause: error,
        details: { file },
      });
    case 13: // SQLITE_FULL
      return new StickError(`the stick is full: the registry ${file} could not be written`, 'free some space on the stick');
    case 8: // SQLITE_READONLY
      return new RegistryError(`the registry ${file} is read-only`, { hint: 'is the stick write-protected?', cause: error, details: { reason: 'read-only' } });
    default:
      return error;
  }
}

function hierarchicalOrder(a: string, b: string): number {
  // '\0' sorts below every character a key name may hold, so a key's subtree
  // follows it before its next sibling.
  const x = a.replaceAll('\\', '\0');
  const y = b.replaceAll('\\', '\0');
  return x < y ? -1 : x > y ? 1 : 0;
}

export class GuestRegistry {
  readonly file: string;
  readonly hostId: string;
  /** Set when the file was found damaged on open and replaced. */
  readonly recovery: RegistryRecovery | undefined;
  private readonly store: RegistryStore;
  private readonly defaults = new MemoryLayer();
  private readonly session = new MemoryLayer();
  private readonly hostScope: string;
  private readonly listeners = new Set<Listener>();
  private readonly pollMs: number;
  private readonly backupIntervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private lastSeq = 0;
  private lastDataVersion = 0;
  private depth = 0;
  private pending: PendingChange[] = [];
  /** Within a transaction: values per key (`scope\0key`) once counted, and keys known to exist. */
  private valueCounts = new Map<string, number>();
  private ensuredKeys = new Set<string>();
  private dirty = false;
  private lastBackup = 0;
  private closed = false;

  private constructor(options: GuestRegistryOptions, store: RegistryStore, recovery: RegistryRecovery | undefined) {
    this.file = options.file;
    this.hostId = options.hostId;
    this.hostScope = `host:${options.hostId}`;
    this.store = store;
    this.recovery = recovery;
    this.pollMs = options.pollMs ?? 250;
    this.backupIntervalMs = options.backupIntervalMs ?? 5 * 60_000;
    this.lastBackup = Date.now();
  }

  /** Opens (creating if needed) and checks the registry file; synchronous (node:sqlite). */
  static open(options: GuestRegistryOptions): GuestRegistry {
    if (!HOST_ID.test(options.hostId)) throw new RegistryError(`"${options.hostId}" is not a host id`, { details: { reason: 'host-id' } });
    const defaults = new MemoryLayer();
    if (options.defaultsFile && existsSync(options.defaultsFile)) loadDefaults(defaults, options.defaultsFile);
    const session = new MemoryLayer();
    for (const fact of options.session ?? []) {
      checkWellKnown(fact.key, fact.name, fact.value);
      session.set(fact.key, fact.name, fact.value);
    }
    let opened: ReturnType<typeof openChecked>;
    try {
      mkdirSync(dirname(options.file), { recursive: true });
      opened = openChecked(options.file, options.check ?? 'quick');
    } catch (error) {
      throw translate(error, options.file);
    }
    let store: RegistryStore;
    try {
      store = new RegistryStore(opened.db);
    } catch (error) {
      opened.db.close();
      throw translate(error, options.file);
    }
    const registry = new GuestRegistry(options, store, opened.recovery);
    for (const [path, key] of defaults.keys) registry.defaults.keys.set(path, key);
    for (const [path, key] of session.keys) registry.session.keys.set(path, key);
    if (opened.recovery) options.onRecovery?.(opened.recovery);
    // A file with no last good copy yet (new, or just recovered without one)
    // gets one now; on a write-protected stick that fails quietly.
    if (opened.recovery || !existsSync(`${options.file}.last-good`)) registry.backupQuietly();
    return registry;
  }

  private scope(layer: RegWritableLayer): string {
    return layer === 'user' ? 'user' : this.hostScope;
  }

  private layerOfScope(scope: string): RegLayer | undefined {
    return scope === 'user' ? 'user' : scope === this.hostScope ? 'host' : undefined;
  }

  // ------------------------------------------------------------------ reads

  /** The value visible in the merged view, and the layer it comes from. */
  get(key: string, name: string): { value: RegValue; layer: RegLayer } | undefined {
    const keyLc = foldCase(key);
    const nameLc = foldCase(name);
    const fact = this.session.keys.get(keyLc)?.values.get(nameLc);
    if (fact) return { value: fact.value, layer: 'session' };
    try {
      const stored = this.store.getMerged(this.hostScope, 'user', keyLc, nameLc);
      if (stored) return { value: stored.value, layer: stored.scope === 'user' ? 'user' : 'host' };
    } catch (error) {
      throw translate(error, this.file);
    }
    const fallback = this.defaults.keys.get(keyLc)?.values.get(nameLc);
    return fallback ? { value: fallback.value, layer: 'defaults' } : undefined;
  }

  /** The data of a value that must have `type` (a RegistryTypeError if it has another); undefined if unset. */
  getAs<T extends RegType>(key: string, name: string, type: T): RegData<T> | undefined {
    const found = this.get(key, name);
    if (!found) return undefined;
    if (found.value.type !== type) {
      throw new RegistryTypeError(`${key}\\${name === '' ? '@' : name} is of type ${found.value.type} (from the ${found.layer} layer), expected ${type}`);
    }
    const data: unknown = found.value.data;
    return data as RegData<T>;
  }

  /** One layer's own value (no merging); `host` is this host's layer. */
  getInLayer(layer: RegLayer, key: string, name: string): RegValue | undefined {
    const keyLc = foldCase(key);
    const nameLc = foldCase(name);
    if (layer === 'defaults' || layer === 'session') return this[layer].keys.get(keyLc)?.values.get(nameLc)?.value;
    try {
      return this.store.getValue(this.scope(layer), keyLc, nameLc)?.value;
    } catch (error) {
      throw translate(error, this.file);
    }
  }

  /** A stored layer's own values at or below `key` ('' for all): what the guest's quota counts (guest-quota.ts). */
  layerValues(layer: 'user' | 'host', key: string): Array<{ keyLc: string; name: string; value: RegValue }> {
    try {
      return this.store.valuesUnder(this.scope(layer), foldCase(key)).map((v) => ({ keyLc: v.keyLc, name: v.name, value: v.value }));
    } catch (error) {
      throw translate(error, this.file);
    }
  }

  /** Whether the key exists in any layer (`''`, the root, always does). */
  hasKey(key: string): boolean {
    const keyLc = foldCase(key);
    if (keyLc === '' || this.session.keys.has(keyLc) || this.defaults.keys.has(keyLc)) return true;
    try {
      return this.store.keyName(this.hostScope, keyLc) !== undefined || this.store.keyName('user', keyLc) !== undefined;
    } catch (error) {
      throw translate(error, this.file);
    }
  }

  /** The names of the key's subkeys in the merged view, sorted case-insensitively. */
  subkeys(key: string): string[] {
    const keyLc = foldCase(key);
    const names = new Map<string, string>();
    const add = (folded: string, name: string) => {
      if (!names.has(folded)) names.set(folded, name);
    };
    // The lowest layer's spelling wins, so a key shipped as `Guest` stays `Guest`.
    for (const [folded, name] of this.defaults.keys.get(keyLc)?.children ?? []) add(folded, name);
    try {
      for (const scope of ['user', this.hostScope]) {
        for (const child of this.store.children(scope, keyLc)) {
          const cut = child.key.lastIndexOf('\\');
          add(child.keyLc.slice(child.keyLc.lastIndexOf('\\') + 1), child.key.slice(cut + 1));
        }
      }
    } catch (error) {
      throw translate(error, this.file);
    }
    for (const [folded, name] of this.session.keys.get(keyLc)?.children ?? []) add(folded, name);
    return [...names.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, name]) => name);
  }

  /** The key's values in the merged view (each from the highest layer that has it), sorted by name. */
  values(key: string): Array<{ name: string; value: RegValue; layer: RegLayer }> {
    const keyLc = foldCase(key);
    const merged = new Map<string, { name: string; value: RegValue; layer: RegLayer }>();
    // The highest layer's value under the lowest layer's spelling of its name.
    const put = (folded: string, name: string, value: RegValue, layer: RegLayer) =>
      merged.set(folded, { name: merged.get(folded)?.name ?? name, value, layer });
    for (const [folded, entry] of this.defaults.keys.get(keyLc)?.values ?? []) put(folded, entry.name, entry.value, 'defaults');
    try {
      for (const [scope, layer] of [
        ['user', 'user'],
        [this.hostScope, 'host'],
      ] as const) {
        for (const stored of this.store.values(scope, keyLc)) put(stored.nameLc, stored.name, stored.value, layer);
      }
    } catch (error) {
      throw translate(error, this.file);
    }
    for (const [folded, entry] of this.session.keys.get(keyLc)?.values ?? []) put(folded, entry.name, entry.value, 'session');
    return [...merged.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, entry]) => entry);
  }

  // ----------------------------------------------------------------- writes

  /**
   * Runs `fn` as one transaction: every write inside commits together or not
   * at all. Nested calls join the outer transaction.
   */
  transaction<T>(fn: () => T): T {
    this.ensureOpen();
    if (this.depth > 0) {
      this.depth++;
      try {
        return fn();
      } finally {
        this.depth--;
      }
    }
    try {
      this.store.db.exec('BEGIN IMMEDIATE');
    } catch (error) {
      throw translate(error, this.file);
    }
    this.depth = 1;
    let result: T;
    try {
      result = fn();
      this.logPending();
      this.store.db.exec('COMMIT');
    } catch (error) {
      this.pending = [];
      try {
        if (this.store.db.isTransaction) this.store.db.exec('ROLLBACK');
      } catch {
        // the rollback journal undoes it on the next open
      }
      throw translate(error, this.file);
    } finally {
      this.depth = 0;
      this.valueCounts.clear();
      this.ensuredKeys.clear();
    }
    const changed = this.pending.length > 0;
    this.pending = [];
    if (changed) {
      this.dirty = true;
      if (this.listeners.size > 0) this.poll(true);
      if (this.backupIntervalMs > 0 && Date.now() - this.lastBackup > this.backupIntervalMs) this.backupQuietly();
    }
    return result;
  }

  private logPending(): void {
    if (this.pending.length === 0) return;
    if (this.pending.length > CHANGE_BURST) {
      for (const scope of new Set(this.pending.map((change) => change.scope))) this.store.logChange(scope, '', null);
      return;
    }
    for (const change of this.pending) this.store.logChange(change.scope, change.key, change.name);
  }

  private setIn(scope: string, key: string, name: string, value: RegValue): void {
    const parts = keyComponents(key);
    refuseSessionKey(parts, key);
    checkValueName(name);
    checkValue(value);
    checkWellKnown(key, name, value);
    name = wellKnownName(key, name) ?? name;
    const keyLc = parts.join('\\').toLowerCase();
    const nameLc = foldCase(name);
    const countId = `${scope}\0${keyLc}`;
    // Keys seen in this transaction exist (a deletion clears what we know).
    if (!this.ensuredKeys.has(countId)) {
      this.store.ensureKey(scope, parts);
      this.ensuredKeys.add(countId);
    }
    if (this.store.setValue(scope, keyLc, nameLc, name, value)) {
      const count = this.valueCounts.get(countId) ?? this.store.countValues(scope, keyLc) - 1;
      if (count >= REG_LIMITS.valuesPerKey) {
        this.store.deleteValue(scope, keyLc, nameLc);
        throw new RegistryLimitError(`the key ${key} already holds ${count} values; the limit is ${REG_LIMITS.valuesPerKey}`, {
          details: { limit: 'valuesPerKey' },
        });
      }
      this.valueCounts.set(countId, count + 1);
    }
    this.pending.push({ scope, key, name });
  }

  private deleteValueIn(scope: string, key: string, name: string): boolean {
    const keyLc = foldCase(key);
    const deleted = this.store.deleteValue(scope, keyLc, foldCase(name));
    if (deleted) {
      const countId = `${scope}\0${keyLc}`;
      const count = this.valueCounts.get(countId);
      if (count !== undefined) this.valueCounts.set(countId, count - 1);
      this.pending.push({ scope, key, name });
    }
    return deleted;
  }

  private deleteKeyIn(scope: string, key: string): boolean {
    const parts = keyComponents(key);
    const deleted = this.store.deleteKey(scope, parts.join('\\').toLowerCase());
    if (deleted) {
      this.valueCounts.clear();
      this.ensuredKeys.clear();
      this.pending.push({ scope, key, name: null });
    }
    return deleted;
  }

  private createKeyIn(scope: string, key: string): boolean {
    refuseSessionKey(keyComponents(key), key);
    const created = this.store.ensureKey(scope, keyComponents(key));
    if (created) this.pending.push({ scope, key, name: null });
    return created;
  }

  /** Sets a value in `layer` (creating the key and its parents); one transaction. */
  set(layer: 'user' | 'host', key: string, name: string, value: RegValue): void {
    writableLayer(layer);
    this.transaction(() => this.setIn(this.scope(layer), key, name, value));
  }

  /** Deletes a value from `layer`; false if that layer did not have it (a lower layer's value shows again). */
  deleteValue(layer: 'user' | 'host', key: string, name: string): boolean {
    writableLayer(layer);
    return this.transaction(() => this.deleteValueIn(this.scope(layer), key, name));
  }

  /** Deletes a key with its subkeys and values from `layer`; false if that layer did not have it. */
  deleteKey(layer: 'user' | 'host', key: string): boolean {
    writableLayer(layer);
    return this.transaction(() => this.deleteKeyIn(this.scope(layer), key));
  }

  /** Creates an empty key (and its parents) in `layer`; false if it existed. */
  createKey(layer: 'user' | 'host', key: string): boolean {
    writableLayer(layer);
    return this.transaction(() => this.createKeyIn(this.scope(layer), key));
  }

  /** Replaces the session facts (e.g. after a new probe); watchers hear about each changed value. */
  setSessionFacts(facts: SessionFact[]): void {
    const before = new Map<string, { key: string; name: string; value: RegValue }>();
    for (const node of this.session.keys.values())
      for (const [nameLc, entry] of node.values) before.set(`${foldCase(node.key)}\0${nameLc}`, { key: node.key, ...entry });
    this.session.clear();
    this.loadSession(facts);
    const changes: RegistryChange[] = [];
    for (const node of this.session.keys.values()) {
      for (const [nameLc, entry] of node.values) {
        const id = `${foldCase(node.key)}\0${nameLc}`;
        const old = before.get(id);
        before.delete(id);
        if (!old || old.value.type !== entry.value.type || JSON.stringify(old.value, jsonSafe) !== JSON.stringify(entry.value, jsonSafe))
          changes.push({ key: node.key, name: entry.name, layer: 'session' });
      }
    }
    for (const gone of before.values()) changes.push({ key: gone.key, name: gone.name, layer: 'session' });
    for (const change of changes) this.emit(change);
  }

  private loadSession(facts: SessionFact[]): void {
    for (const fact of facts) {
      checkWellKnown(fact.key, fact.name, fact.value);
      this.session.set(fact.key, fact.name, fact.value);
    }
  }

  // ------------------------------------------------------------------ watch

  /** Calls `listener` after each change, made here or committed by another process; returns the unsubscribe. */
  watch(listener: (change: RegistryChange) => void): () => void {
    this.ensureOpen();
    if (this.listeners.size === 0) {
      this.lastSeq = this.store.maxSeq();
      this.lastDataVersion = this.store.dataVersion();
      this.timer = setInterval(() => this.poll(false), this.pollMs);
      this.timer.unref();
    }
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
  }

  /** Reads the change log; `own` after this process's commit (data_version only moves for others'). */
  private poll(own: boolean): void {
    if (this.closed) return;
    try {
      const version = this.store.dataVersion();
      if (!own && version === this.lastDataVersion) return;
      this.lastDataVersion = version;
      const first = this.store.firstSeq();
      if (first !== undefined && first > this.lastSeq + 1) {
        // The log was trimmed past what we saw: say that anything may have changed.
        this.emit({ key: '', layer: 'user' });
        this.emit({ key: '', layer: 'host' });
      }
      for (const row of this.store.changesSince(this.lastSeq)) {
        this.lastSeq = row.seq;
        const layer = this.layerOfScope(row.scope);
        if (layer) this.emit(row.name === null ? { key: row.key, layer } : { key: row.key, name: row.name, layer });
      }
    } catch {
      // A poll that fails (file busy for longer than the timeout) tries again next tick.
    }
  }

  private emit(change: RegistryChange): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(change);
      } catch {
        // one listener's failure is not the registry's
      }
    }
  }

  // ------------------------------------------------------- import / export

  /**
   * The registry (or the subtree at `key`) as a `.reg` file: `layer` one layer
   * alone, or `merged` (default) the view a reader sees, session facts included.
   */
  exportReg(options: { key?: string; layer?: RegLayer | 'merged'; format?: RegFormat } = {}): string {
    return writeReg(this.exportEntries(options.key ?? '', options.layer ?? 'merged'), options.format ?? 'v5');
  }

  /** The keys and values of an export, in file order. */
  exportEntries(key: string, layer: RegLayer | 'merged'): RegKeyEntry[] {
    const keyLc = key === '' ? '' : keyComponents(key).join('\\').toLowerCase();
    const layers: RegLayer[] = layer === 'merged' ? ['defaults', 'user', 'host', 'session'] : [layer];
    const entries = new Map<string, { key: string; values: Map<string, { name: string; value: RegValue }> }>();
    const entry = (folded: string, path: string) => {
      let found = entries.get(folded);
      // As in subkeys(): the lowest layer's spelling wins.
      if (!found) {
        found = { key: path, values: new Map() };
        entries.set(folded, found);
      }
      return found;
    };
    const under = (folded: string) => keyLc === '' || folded === keyLc || folded.startsWith(`${keyLc}\\`);
    try {
      for (const l of layers) {
        if (l === 'defaults' || l === 'session') {
          for (const [folded, node] of this[l].keys) {
            if (folded === '' || !under(folded)) continue;
            const target = entry(folded, node.key);
            for (const [nameLc, value] of node.values) target.values.set(nameLc, { name: target.values.get(nameLc)?.name ?? value.name, value: value.value });
          }
        } else {
          const scope = this.scope(l);
          for (const k of this.store.keysUnder(scope, keyLc)) entry(k.keyLc, k.key);
          for (const v of this.store.valuesUnder(scope, keyLc)) {
            const target = entries.get(v.keyLc);
            target?.values.set(v.nameLc, { name: target.values.get(v.nameLc)?.name ?? v.name, value: v.value });
          }
        }
      }
    } catch (error) {
      throw translate(error, this.file);
    }
    if (keyLc !== '' && !entries.has(keyLc)) {
      throw new RegistryError(`there is no key ${key}${layer === 'merged' ? '' : ` in the ${layer} layer`}`, { details: { reason: 'not-found', key } });
    }
    return [...entries.keys()].sort(hierarchicalOrder).map((folded) => {
      const found = entries.get(folded)!;
      const values = [...found.values.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, value]) => value);
      return { key: found.key, values };
    });
  }

  /**
   * Applies a `.reg` file to `layer` as one transaction: `[KEY]` creates,
   * `[-KEY]` deletes a subtree, `"name"=-` deletes a value. A malformed file,
   * a wrong type or a limit throws RegFileError naming the line, and nothing
   * is imported.
   */
  importReg(text: string, layer: 'user' | 'host', options: { source?: string } = {}): { keys: number; values: number; deletions: number; skipped?: number } {
    writableLayer(layer);
    const { operations } = parseReg(text, options);
    const scope = this.scope(layer);
    const keys = new Set<string>();
    let values = 0;
    let deletions = 0;
    // An export of the merged view holds the session's Host\ facts: importing
    // it back skips them (they are this session's, made fresh at each launch).
    let skipped = 0;
    this.transaction(() => {
      for (const operation of operations) {
        if (isSessionKey(operation.key.split('\\'))) {
          if (operation.op === 'set') skipped++;
          continue;
        }
        atLine(operation, options.source, () => {
          switch (operation.op) {
            case 'key':
              keys.add(foldCase(operation.key));
              this.createKeyIn(scope, operation.key);
              break;
            case 'delete-key':
              this.deleteKeyIn(scope, operation.key);
              deletions++;
              break;
            case 'set':
              this.setIn(scope, operation.key, operation.name, operation.value);
              values++;
              break;
            case 'delete-value':
              this.deleteValueIn(scope, operation.key, operation.name);
              deletions++;
              break;
          }
        });
      }
    });
    return { keys: keys.size, values, deletions, ...(skipped > 0 ? { skipped } : {}) };
  }

  // -------------------------------------------------------------- lifecycle

  /** Writes a verified copy of the current state as the last good copy (VACUUM INTO + rename). */
  backup(): void {
    this.ensureOpen();
    try {
      writeLastGood(this.store.db, this.file);
    } catch (error) {
      throw translate(error, this.file);
    }
    this.dirty = false;
    this.lastBackup = Date.now();
  }

  private backupQuietly(): void {
    try {
      this.backup();
    } catch {
      // The commit stands; the previous last good copy stays until the next try.
    }
  }

  /** Stops watching and closes the file; refreshes the last good copy if anything changed (unless `backup: false`). */
  close(options: { backup?: boolean } = {}): void {
    if (this.closed) return;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.listeners.clear();
    if (this.dirty && options.backup !== false) this.backupQuietly();
    this.closed = true;
    this.store.close();
  }

  private ensureOpen(): void {
    if (this.closed) throw new RegistryError('the registry is closed', { details: { reason: 'closed' } });
  }
}

function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return `${value}n`;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('hex');
  return value;
}

/** Runs one operation of an import, naming its line in any error. */
function atLine(operation: RegOperation, source: string | undefined, fn: () => void): void {
  try {
    fn();
  } catch (error) {
    if (error instanceof RegFileError || !(error instanceof RegistryError)) throw error;
    throw new RegFileError(operation.line, error.message, source);
  }
}

/** Loads the payload's registry.reg into the defaults layer. */
function loadDefaults(layer: MemoryLayer, file: string): void {
  let parsed: ReturnType<typeof parseReg>;
  try {
    parsed = parseReg(decodeRegFile(readFileSync(file)), { source: file });
  } catch (error) {
    if (error instanceof RegFileError)
      throw new PayloadError(`the payload's registry defaults ${file} line ${error.line}: ${error.problem}`, { details: { file, line: error.line } });
    throw error;
  }
  for (const operation of parsed.operations) {
    try {
      switch (operation.op) {
        case 'key':
          layer.ensureKey(operation.key);
          break;
        case 'delete-key':
          layer.deleteKey(operation.key);
          break;
        case 'set':
          checkWellKnown(operation.key, operation.name, operation.value);
          layer.set(operation.key, operation.name, operation.value);
          break;
        case 'delete-value':
          layer.deleteValue(operation.key, operation.name);
          break;
      }
    } catch (error) {
      throw new PayloadError(`the payload's registry defaults ${file} line ${operation.line}: ${(error as Error).message}`, {
        details: { file, line: operation.line },
      });
    }
  }
}
