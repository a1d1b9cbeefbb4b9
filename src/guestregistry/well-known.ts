// The keys and values the launcher itself reads (docs/registry.md).
// Other modules import these names instead of spelling the strings.
import type { RegType } from './value.ts';

/** Guest identity and locale, applied at boot. */
export const GUEST_KEY = 'Guest';
/** Machine sizing overrides (src/session/sizing.ts). */
export const MACHINE_KEY = 'Machine';
/** Session facts from the HostProfile, under `Host\...` (session layer, never persisted). */
export const HOST_KEY = 'Host';
/** What the guest may fill of the stick (src/session/stick-limits.ts); set from the host only. */
export const STORAGE_KEY = 'Storage';
/** The guest's network (docs/network.md); set from the host only. */
export const NETWORK_KEY = 'Network';

export const WELL_KNOWN = {
  hostname: { key: GUEST_KEY, name: 'Hostname', type: 'string' },
  keyboard: { key: GUEST_KEY, name: 'Keyboard', type: 'string' },
  timezone: { key: GUEST_KEY, name: 'Timezone', type: 'string' },
  memoryMiB: { key: MACHINE_KEY, name: 'MemoryMiB', type: 'int32' },
  cpus: { key: MACHINE_KEY, name: 'Cpus', type: 'int32' },
  filesQuotaMiB: { key: STORAGE_KEY, name: 'FilesQuotaMiB', type: 'int32' },
  stickReserveMiB: { key: STORAGE_KEY, name: 'StickReserveMiB', type: 'int32' },
  registryQuotaKiB: { key: STORAGE_KEY, name: 'RegistryQuotaKiB', type: 'int32' },
  registryValueMaxKiB: { key: STORAGE_KEY, name: 'RegistryValueMaxKiB', type: 'int32' },
  registryValues: { key: STORAGE_KEY, name: 'RegistryValues', type: 'int32' },
  networkEnabled: { key: NETWORK_KEY, name: 'Enabled', type: 'bool' },
} as const satisfies Record<string, { key: string; name: string; type: RegType }>;

const BY_NAME = new Map<string, { name: string; type: RegType }>(
  Object.values(WELL_KNOWN).map((entry) => [`${entry.key.toLowerCase()}\0${entry.name.toLowerCase()}`, entry]),
);

/** The type a well-known value must have, if `key`/`name` is one (case-insensitive). */
export function wellKnownType(key: string, name: string): RegType | undefined {
  return BY_NAME.get(`${key.toLowerCase()}\0${name.toLowerCase()}`)?.type;
}

/** The canonical spelling of a well-known value's name (`hostname` → `Hostname`). */
export function wellKnownName(key: string, name: string): string | undefined {
  return BY_NAME.get(`${key.toLowerCase()}\0${name.toLowerCase()}`)?.name;
}
