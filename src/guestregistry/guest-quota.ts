// How much the guest may write to registry.sqlite through its channel
// (guest-channel.ts): a value at most `valueBytes`, the user's layer at most
// `totalBytes` and `values` values. A `reg set` past them is refused with a
// line saying which and how to make room; nothing in the registry changes.
//
// What counts: each value of the user's layer as Windows would store it
// (valueBytes) plus its key path and name as UTF-16, the layer's values
// whoever set them (the person's own, from `launcher reg`, included: the
// room is the layer's). The totals are measured once when the channel opens
// and then kept running from the guest's own set and del; a change made with
// `launcher reg` while the guest runs is counted from the next boot.
import { RegistryLimitError } from '../errors.ts';
import { foldCase, keyComponents, type RegValue, valueBytes } from './value.ts';

/** The defaults; Storage\Registry* in the registry change them (src/session/stick-limits.ts). */
export const GUEST_REGISTRY_LIMITS = {
  /** Bytes of one value set from the guest. */
  valueBytes: 256 * 1024,
  /** Bytes of the whole user layer, for a set from the guest. */
  totalBytes: 16 * 1024 * 1024,
  /** Values in the user layer, for a set from the guest. */
  values: 65_536,
} as const;

export type GuestRegistryLimits = { [K in keyof typeof GUEST_REGISTRY_LIMITS]: number };

/** What the quota reads of a GuestRegistry. */
export interface QuotaRegistry {
  getInLayer(layer: 'user', key: string, name: string): RegValue | undefined;
  /** The user layer's values at or below `key` ('' for all). */
  layerValues(layer: 'user', key: string): Array<{ keyLc: string; name: string; value: RegValue }>;
}

export interface GuestRegistryUsage {
  values: number;
  bytes: number;
  limits: GuestRegistryLimits;
  /** Set since a set was refused for room, until a set fits again or a del makes room. */
  full?: { since: string; message: string };
}

/** What one value costs: its data as Windows stores it, its key path and name as UTF-16. */
export function entryBytes(keyLc: string, name: string, value: RegValue): number {
  return valueBytes(value) + 2 * (keyLc.length + name.length);
}

const kib = (bytes: number) => `${Math.floor(bytes / 1024)} KiB`;

export class GuestRegistryQuota {
  readonly limits: GuestRegistryLimits;
  readonly #registry: QuotaRegistry;
  #values = 0;
  #bytes = 0;
  #full: { since: string; message: string } | undefined;

  constructor(registry: QuotaRegistry, limits: GuestRegistryLimits = GUEST_REGISTRY_LIMITS) {
    this.#registry = registry;
    this.limits = limits;
    for (const v of registry.layerValues('user', '')) {
      this.#values++;
      this.#bytes += entryBytes(v.keyLc, v.name, v.value);
    }
  }

  usage(): GuestRegistryUsage {
    return { values: this.#values, bytes: this.#bytes, limits: this.limits, ...(this.#full ? { full: this.#full } : {}) };
  }

  /**
   * Checks a set from the guest before it is made; throws RegistryLimitError
   * (reason `quota`) when it does not fit. Returns what to count once it is made.
   */
  checkSet(key: string, name: string, value: RegValue): () => void {
    const size = valueBytes(value);
    if (size > this.limits.valueBytes) {
      throw new RegistryLimitError(
        `the value is ${size} bytes; a value set from the guest may be at most ${this.limits.valueBytes} bytes (registry Storage\\RegistryValueMaxKiB, set from the host)`,
        { details: { limit: 'guestValueBytes', bytes: size } },
      );
    }
    const keyLc = keyComponents(key).join('\\').toLowerCase();
    const old = this.#registry.getInLayer('user', key, name);
    const added = entryBytes(keyLc, name, value) - (old ? entryBytes(keyLc, name, old) : 0);
    const addedValues = old ? 0 : 1;
    if (addedValues > 0 && this.#values + 1 > this.limits.values) {
      throw this.#refuse(
        `the registry is full: your layer holds ${this.#values} values, the most the guest may fill it to (registry Storage\\RegistryValues); delete some with reg del`,
        'guestValues',
      );
    }
    if (added > 0 && this.#bytes + added > this.limits.totalBytes) {
      throw this.#refuse(
        `the registry is full: your layer holds ${kib(this.#bytes)} and this value needs ${kib(added)} more, past the ${kib(this.limits.totalBytes)} the guest may fill it to (registry Storage\\RegistryQuotaKiB); delete values with reg del`,
        'guestTotalBytes',
      );
    }
    return () => {
      this.#values += addedValues;
      this.#bytes += added;
      this.#full = undefined;
    };
  }

  #refuse(message: string, limit: string): RegistryLimitError {
    this.#full ??= { since: new Date().toISOString(), message };
    return new RegistryLimitError(message, { details: { limit, reason: 'quota' } });
  }

  /** Before a `del KEY NAME`: returns what to give back once it is done. */
  beforeDeleteValue(key: string, name: string): () => void {
    const old = this.#registry.getInLayer('user', key, name);
    if (!old) return () => {};
    const bytes = entryBytes(keyComponents(key).join('\\').toLowerCase(), name, old);
    return () => {
      this.#values--;
      this.#bytes -= bytes;
      this.#full = undefined;
    };
  }

  /** Before a `del KEY`: what the subtree holds, to give back once it is gone. */
  beforeDeleteKey(key: string): () => void {
    let values = 0;
    let bytes = 0;
    for (const v of this.#registry.layerValues('user', foldCase(keyComponents(key).join('\\')))) {
      values++;
      bytes += entryBytes(v.keyLc, v.name, v.value);
    }
    return () => {
      this.#values -= values;
      this.#bytes -= bytes;
      if (values > 0) this.#full = undefined;
    };
  }
}
