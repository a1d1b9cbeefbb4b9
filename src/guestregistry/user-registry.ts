// Opening a user's registry: its file, the payload defaults of the guest, and
// this host's layer by its fingerprint. Where those files are on a stick is the
// stick's to say (registryPaths in src/stick/layout.ts); the caller passes them,
// so the registry does not depend on the stick's layout.
import { hostFingerprint } from '../platform/host-fingerprint.ts';
import { GuestRegistry, type GuestRegistryOptions } from './registry.ts';

export interface UserRegistryOptions extends Partial<Omit<GuestRegistryOptions, 'file' | 'defaultsFile'>> {
  /** The user's registry file and the guest's payload defaults: registryPaths(layout, user, guest). */
  paths: { file: string; defaultsFile: string };
  /** The stick's salt for this host's fingerprint (layout.hostSalt); unused when hostId is given. */
  hostSalt: string;
}

export async function openUserRegistry(options: UserRegistryOptions): Promise<GuestRegistry> {
  const { paths, hostSalt, ...rest } = options;
  const hostId = rest.hostId ?? (await hostFingerprint(hostSalt));
  return GuestRegistry.open({ ...rest, file: paths.file, defaultsFile: paths.defaultsFile, hostId });
}
