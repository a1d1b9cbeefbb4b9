// Opening a user's registry on a stick: the file under users/<name>/, the
// payload defaults of the guest, and this host's layer by its fingerprint.
import { hostFingerprint } from '../platform/host-fingerprint.ts';
import { registryPaths, type StickLayout } from '../stick/layout.ts';
import { GuestRegistry, type GuestRegistryOptions } from './registry.ts';

export interface UserRegistryOptions extends Partial<Omit<GuestRegistryOptions, 'file' | 'defaultsFile'>> {
  layout: StickLayout;
  user: string;
  /** The guest whose payload defaults form the bottom layer (default `default`). */
  guest?: string;
}

export async function openUserRegistry(options: UserRegistryOptions): Promise<GuestRegistry> {
  const { layout, user, guest = 'default', ...rest } = options;
  const paths = registryPaths(layout, user, guest);
  const hostId = rest.hostId ?? (await hostFingerprint(layout.hostSalt));
  return GuestRegistry.open({ ...rest, file: paths.file, defaultsFile: paths.defaultsFile, hostId });
}
