// Launch step 3: from here on, pulling the stick out stops the launch (its
// boot signal aborts) and later the session (src/session/surprise-removal.ts).
// No guard (its monitor could not start) is not a failure.
import type { HostProfile } from '../../hostprobe/host-profile.ts';
import { RemovalGuard, stickHints } from '../surprise-removal.ts';

export async function guardStick(stick: { layout: { root: string } }, host: { profile: Pick<HostProfile, 'stick'> }): Promise<RemovalGuard | undefined> {
  return RemovalGuard.start(stick.layout.root, { stick: stickHints(host.profile.stick) }).catch(() => undefined);
}
