// The logged-in user's guest registry in a session: opened after login, its
// Machine overrides feed the sizing, its virtio port serves the guest's `reg`
// command, and it is closed at teardown. Without a user there is no registry
// and no port (the guest's `reg` then says so).
import { REGISTRY_PORT_NAME, serveGuestChannel } from '../guestregistry/guest-channel.ts';
import type { GuestRegistry } from '../guestregistry/registry.ts';
import { openUserRegistry } from '../guestregistry/user-registry.ts';
import type { SessionFact } from '../guestregistry/value.ts';
import { WELL_KNOWN } from '../guestregistry/well-known.ts';
import { registryPaths, type StickLayout } from '../stick/layout.ts';
import type { ExtraChannel } from './extra-channel.ts';
import type { SizingOverrides } from './sizing.ts';
import type { StickLimits } from './stick-limits.ts';

export const REGISTRY_CHANNEL_ID = 'registry';
/** On the kernel command line when the port is served: the guest's boot step waits for it. */
export const REGISTRY_CMDLINE_WORD = 'pocketvm.registry';

export interface SessionRegistryOptions {
  layout: StickLayout;
  guest: string;
  /** The payload whose registry.reg holds the defaults (default: the guest's name). */
  payload?: string;
  user: string;
  /** This host's fingerprint: names the registry's host layer (as `launcher reg --layer host` does). */
  hostId?: string;
  /** The session layer: the HostProfile as `Host\...` facts. */
  facts?: SessionFact[];
  /** Told once if the file was damaged and its last good copy restored. */
  onNotice?: (message: string) => void;
}

/** The user's registry with the payload defaults below and this host's facts on top. */
export function openSessionRegistry(options: SessionRegistryOptions): Promise<GuestRegistry> {
  return openUserRegistry({
    paths: registryPaths(options.layout, options.user, options.guest, options.payload ?? options.guest),
    hostSalt: options.layout.hostSalt,
    ...(options.hostId ? { hostId: options.hostId } : {}),
    ...(options.facts ? { session: options.facts } : {}),
    onRecovery: (recovery) => options.onNotice?.(recovery.message),
  });
}

/** Machine\MemoryMiB and Machine\Cpus from the merged view, for sizeMachine. */
export function registrySizingOverrides(registry: Pick<GuestRegistry, 'get'>): SizingOverrides {
  const int = (entry: { key: string; name: string }): number | undefined => {
    const found = registry.get(entry.key, entry.name);
    // The registry refuses other types for these names; a positive int32 is all sizing can use.
    return found?.value.type === 'int32' && found.value.data > 0 ? found.value.data : undefined;
  };
  const memoryMiB = int(WELL_KNOWN.memoryMiB);
  const cpus = int(WELL_KNOWN.cpus);
  return { ...(memoryMiB !== undefined ? { memoryMiB } : {}), ...(cpus !== undefined ? { cpus } : {}) };
}

/** A sizing value in the registry that sizing cannot use, and why (`probe` reports these). */
export interface IgnoredRegistryValue {
  key: string;
  name: string;
  layer: string;
  data: string;
  reason: string;
}

/** Machine\MemoryMiB or Machine\Cpus set to something registrySizingOverrides drops (0, negative). */
export function ignoredSizingValues(registry: Pick<GuestRegistry, 'get'>): IgnoredRegistryValue[] {
  const ignored: IgnoredRegistryValue[] = [];
  for (const entry of [WELL_KNOWN.memoryMiB, WELL_KNOWN.cpus]) {
    const found = registry.get(entry.key, entry.name);
    if (!found || (found.value.type === 'int32' && found.value.data > 0)) continue;
    ignored.push({
      key: entry.key,
      name: entry.name,
      layer: found.layer,
      data: String(found.value.data),
      reason: found.value.type === 'int32' ? 'not a positive number, so the guest is sized without it' : `of type ${found.value.type}, not int32`,
    });
  }
  return ignored;
}

/** The registry's virtio-serial port, served for each boot attempt while QEMU is paused. */
export function registryChannel(registry: GuestRegistry, onProblem?: (message: string) => void, limits?: StickLimits): ExtraChannel {
  return {
    id: REGISTRY_CHANNEL_ID,
    kind: 'serial',
    name: REGISTRY_PORT_NAME,
    open: (stream) =>
      serveGuestChannel(stream, registry, {
        ...(onProblem ? { onProblem } : {}),
        // What the guest may write to registry.sqlite (src/session/stick-limits.ts).
        ...(limits ? { quota: limits.registryQuota(registry), onFull: (message: string) => limits.registryFull(message) } : {}),
      }),
  };
}
