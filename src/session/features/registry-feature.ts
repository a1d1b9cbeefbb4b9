// The user's guest registry as a launch feature: opened after login (its
// Machine overrides size the guest), its virtio port serving the guest's `reg`
// command (src/session/session-registry.ts), closed at teardown after the
// channel services that use it.
import type { GuestRegistry } from '../../guestregistry/registry.ts';
import { hostFacts } from '../../hostprobe/host-facts.ts';
import type { HostProfile } from '../../hostprobe/host-profile.ts';
import type { StickLayout } from '../../stick/layout.ts';
import { networkEnabled } from '../network-setting.ts';
import { openSessionRegistry, REGISTRY_CMDLINE_WORD, registryChannel, registrySizingOverrides } from '../session-registry.ts';
import type { LaunchFeature } from '../launch/feature.ts';
import type { Teardown } from '../launch/teardown.ts';
import { StickLimits } from '../stick-limits.ts';

export interface RegistryFeature {
  feature: LaunchFeature;
  registry: GuestRegistry;
  /** What the guest may fill of the stick through /host and the registry. */
  limits: StickLimits;
}

export async function registryFeature(args: {
  layout: StickLayout;
  guest: string;
  /** The payload whose registry.reg holds the defaults, when not the guest's own name. */
  payload?: string;
  user: string;
  profile: HostProfile;
  teardown: Teardown;
  notice: (message: string) => void;
  log: (message: string) => void;
  /** What the user's disk quota leaves this guest's /host files, when the owner set one. */
  filesCapBytes?: number;
}): Promise<RegistryFeature> {
  const { profile } = args;
  const registry = await openSessionRegistry({
    layout: args.layout,
    guest: args.guest,
    ...(args.payload ? { payload: args.payload } : {}),
    user: args.user,
    ...(profile.fingerprint ? { hostId: profile.fingerprint } : {}),
    facts: hostFacts(profile),
    onNotice: args.notice,
  });
  // Added before any channel service opens, so it closes after them (hooks run newest first).
  args.teardown.add(() => registry.close());
  const limits = new StickLimits({
    stickDir: args.layout.root,
    registry,
    notice: args.notice,
    ...(args.filesCapBytes === undefined ? {} : { filesCapBytes: args.filesCapBytes }),
  });
  return {
    feature: {
      name: 'registry',
      channels: [registryChannel(registry, args.log, limits)],
      cmdline: [REGISTRY_CMDLINE_WORD],
      sizing: registrySizingOverrides(registry),
      // Network\Enabled = false: the card stays, restricted (src/session/network-setting.ts).
      ...(networkEnabled(registry) ? {} : { isolatesNetwork: true }),
      // The stick keeps a suspend's worth free, whatever the guest writes through /host.
      planned: (machine) => limits.setGuestMemory(machine.memoryMiB),
    },
    registry,
    limits,
  };
}
