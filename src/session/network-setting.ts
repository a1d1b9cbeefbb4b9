// The guest's network as a launch decides it (docs/network.md): the payload's
// manifest says whether the guest has a user-mode card at all; the person's
// registry value Network\Enabled = false keeps the card but cuts it off
// (restrict=on), so a guest suspended with the network on resumes with it off
// and the other way round (a saved state loads only into the same devices).
import type { GuestRegistry } from '../guestregistry/registry.ts';
import { WELL_KNOWN } from '../guestregistry/well-known.ts';
import type { GuestNetwork } from '../vmm/machine-spec.ts';
import { USER_NETWORK_MAC } from '../vmm/qemu-args.ts';

/** On the kernel command line when the guest has a user-mode card: its boot step runs DHCP on the card with this address. */
export const NETWORK_CMDLINE_WORD = `pocketvm.net=${USER_NETWORK_MAC}`;

/** Network\Enabled from the merged view; unset (or not a bool) is on. */
export function networkEnabled(registry: Pick<GuestRegistry, 'get'>): boolean {
  const found = registry.get(WELL_KNOWN.networkEnabled.key, WELL_KNOWN.networkEnabled.name);
  return !(found?.value.type === 'bool' && !found.value.data);
}

/** The machine's network: none stays none; a card some feature isolates is restricted. */
export function guestNetwork(manifest: 'none' | 'user', isolated: boolean): GuestNetwork {
  if (manifest === 'none') return 'none';
  return isolated ? 'isolated' : 'user';
}
