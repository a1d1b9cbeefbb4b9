// What the guest may fill of the stick in a session, besides its personal
// disk: files/ and upper/ through /host (src/dyntable/store-quota.ts) and
// the registry through its channel (src/guestregistry/guest-quota.ts). The
// limits come from the registry's Storage\ key (set from the host: the
// guest's channel refuses that key), else the defaults below. A refusal is
// said once in one line (again at most once a minute) and shown in
// `launcher status` (`storage` in its --json) while it lasts.
import {
  GUEST_REGISTRY_LIMITS,
  GuestRegistryQuota,
  type GuestRegistryLimits,
  type GuestRegistryUsage,
  type QuotaRegistry,
} from '../guestregistry/guest-quota.ts';
import type { GuestRegistry } from '../guestregistry/registry.ts';
import { WELL_KNOWN } from '../guestregistry/well-known.ts';
import { StoreQuota, type StoreQuotaStatus } from '../dyntable/store-quota.ts';

const MiB = 1024 * 1024;

export const STICK_LIMIT_DEFAULTS = {
  /** files/ and upper/ together, per user. */
  filesQuotaMiB: 4096,
  /**
   * Kept free on the stick beyond a suspend's saved state (the guest's RAM
   * size): room for the personal disk to grow, the logs and the registry.
   */
  stickReserveMiB: 256,
} as const;

const TELL_AGAIN_MS = 60_000;

export interface StickLimitsStatus {
  /** What the guest wrote through /host (files/ and upper/) against its quota and the stick's reserve. */
  files: StoreQuotaStatus;
  /** What the user's registry layer holds against what the guest may fill it to. */
  registry?: GuestRegistryUsage;
}

type LimitReader = Pick<GuestRegistry, 'get'>;

/** A positive int32 from the registry's Storage\ key, or undefined (then the default applies). */
function positive(registry: LimitReader | undefined, entry: { key: string; name: string }): number | undefined {
  const found = registry?.get(entry.key, entry.name);
  return found?.value.type === 'int32' && found.value.data > 0 ? found.value.data : undefined;
}

export class StickLimits {
  readonly files: StoreQuota;
  readonly registryLimits: GuestRegistryLimits;
  readonly #stickReserveBytes: number;
  readonly #notice: (message: string) => void;
  #registryQuota: GuestRegistryQuota | undefined;
  #registryToldAt = -Infinity;

  /** `filesCapBytes`: a lower cap on files/ and upper/ (what the user's disk quota leaves them, src/session/launch/user-quota.ts). */
  constructor(options: { stickDir: string; registry?: LimitReader; notice?: (message: string) => void; filesCapBytes?: number }) {
    const { registry } = options;
    this.#notice = options.notice ?? (() => {});
    this.#stickReserveBytes = (positive(registry, WELL_KNOWN.stickReserveMiB) ?? STICK_LIMIT_DEFAULTS.stickReserveMiB) * MiB;
    this.files = new StoreQuota({
      capBytes: Math.min((positive(registry, WELL_KNOWN.filesQuotaMiB) ?? STICK_LIMIT_DEFAULTS.filesQuotaMiB) * MiB, options.filesCapBytes ?? Infinity),
      reserveBytes: this.#stickReserveBytes,
      stickDir: options.stickDir,
      onFull: (message) => this.#notice(message),
    });
    this.registryLimits = {
      totalBytes: (positive(registry, WELL_KNOWN.registryQuotaKiB) ?? GUEST_REGISTRY_LIMITS.totalBytes / 1024) * 1024,
      valueBytes: (positive(registry, WELL_KNOWN.registryValueMaxKiB) ?? GUEST_REGISTRY_LIMITS.valueBytes / 1024) * 1024,
      values: positive(registry, WELL_KNOWN.registryValues) ?? GUEST_REGISTRY_LIMITS.values,
    };
  }

  /** The guest's RAM is what a suspend writes: the stick keeps that much free besides the reserve. */
  setGuestMemory(memoryMiB: number): void {
    this.files.reserveBytes = this.#stickReserveBytes + memoryMiB * MiB;
  }

  /** The quota of one registry channel (each boot attempt opens its own; it measures the layer as it opens). */
  registryQuota(registry: QuotaRegistry): GuestRegistryQuota {
    this.#registryQuota = new GuestRegistryQuota(registry, this.registryLimits);
    return this.#registryQuota;
  }

  /** A set from the guest was refused for room: said once, then at most once a minute. */
  registryFull(message: string): void {
    const now = Date.now();
    if (now - this.#registryToldAt < TELL_AGAIN_MS) return;
    this.#registryToldAt = now;
    this.#notice(`the guest's registry is full: ${message.replace(/^the registry is full: /, '')}`);
  }

  status(): StickLimitsStatus {
    return { files: this.files.status(), ...(this.#registryQuota ? { registry: this.#registryQuota.usage() } : {}) };
  }
}
