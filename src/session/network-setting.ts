// The guest's network as a launch decides it (docs/network.md): the payload's
// manifest says whether the guest has a user-mode card at all; the person's
// registry value Network\Enabled = false keeps the card but cuts it off
// (restrict=on), so a guest suspended with the network on resumes with it off
// and the other way round (a saved state loads only into the same devices).
import type { GuestRegistry } from '../guestregistry/registry.ts';
import { WELL_KNOWN } from '../guestregistry/well-known.ts';
import type { GuestNetwork } from '../vmm/machine-spec.ts';
import { USER_NETWORK_MAC } from '../vmm/qemu-args.ts';

/** The address user-mode networking leases to the guest (its first and only DHCP client). */
export const GUEST_LEASED_ADDRESS = '10.0.2.15';
/** What the guest reaches the host's 127.0.0.1 as (libslirp's gateway). */
export const HOST_LOOPBACK_FROM_GUEST = '10.0.2.2';

/** On the kernel command line when the guest has a user-mode card: its boot step runs DHCP on the card with this address. */
export const networkCmdlineWord = (mac: string = USER_NETWORK_MAC): string => `pocketvm.net=${mac}`;

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

/** The network as `launcher status` shows it. */
export interface NetworkStatus {
  mode: GuestNetwork;
  /** With a card: the address DHCP gives the guest (root in the guest could set another). */
  leasedAddress?: string;
  /** With the network open: the guest's name for the host's 127.0.0.1. */
  hostLoopback?: string;
}

export function networkStatus(mode: GuestNetwork): NetworkStatus {
  if (mode === 'none') return { mode };
  if (mode === 'isolated') return { mode, leasedAddress: GUEST_LEASED_ADDRESS };
  return { mode, leasedAddress: GUEST_LEASED_ADDRESS, hostLoopback: HOST_LOOPBACK_FROM_GUEST };
}

/** One line for `launcher status`. */
export function describeNetwork(status: NetworkStatus): string {
  switch (status.mode) {
    case 'none':
      return 'network: none (the guest has no network card)';
    case 'isolated':
      return `network: off (Network\\Enabled is false; the card has ${status.leasedAddress} and reaches nothing)`;
    case 'user':
      return `network: user-mode, the guest is ${status.leasedAddress}; the host's 127.0.0.1 is ${status.hostLoopback} to it (docs/network.md)`;
  }
}
