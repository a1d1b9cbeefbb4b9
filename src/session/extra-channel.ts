// A feature's launcher-only channel to the guest (the registry port, the 9P
// namespace, a migration stream). launchSession collects them before boot;
// each gets its descriptor, its virtio-serial port if it is one, and is opened
// while QEMU is still paused, so the guest never finds a port nobody serves.
import type { Duplex } from 'node:stream';
import type { GuestLife } from '../vmm/guest-life.ts';
import type { GuestRamWriter } from '../vmm/guest-ram.ts';
import type { QmpClient } from '../vmm/qmp-client.ts';

export interface ExtraChannel {
  /** Unique id: the channel's key in MachineChannels.extra and its device id. */
  id: string;
  /**
   * `serial`: a virtio-serial port named `name`; `nic`: a virtio network card
   * with address `mac`, backed by the channel; `stream`: a raw descriptor for QEMU.
   */
  kind: 'serial' | 'nic' | 'stream';
  /** The port name the guest sees under /dev/virtio-ports/ (serial only). */
  name?: string;
  /** The card's MAC address (nic only). */
  mac?: string;
  /**
   * Called with the launcher's end while QEMU is paused, once per boot
   * attempt; what it returns is closed at teardown (or when the launch fails).
   */
  open?: (stream: Duplex, machine: ChannelMachine) => Promise<ChannelService | void> | ChannelService | void;
}

/** What a channel may use of the boot attempt it serves. */
export interface ChannelMachine {
  /** The guest's RAM, when it is a file the launcher shares (placed 9P reads). */
  guestRam?: GuestRamWriter;
  /** The attempt's resets, power-offs and suspends: whatever writes guest RAM joins it. */
  life?: GuestLife;
  /** QEMU's monitor (a card's transmit watchdog, src/vmm/nic-tx-watchdog.ts). */
  qmp?: QmpClient;
}

export interface ChannelService {
  close(): Promise<void> | void;
}
