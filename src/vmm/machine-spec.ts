// MachineSpec: everything QEMU needs to know about one guest, as plain data.
// It is built from the payload manifest and the host's facts, and turned into
// an argument list by buildQemuArgs (a pure function), so the whole mapping can
// be unit-tested for every host without starting anything.

import type { HostOs } from '../platform/host-platform.ts';

export type { HostOs };
export type Accelerator = 'kvm' | 'whpx' | 'hvf' | 'tcg';

/**
 * How a control channel reaches the launcher. Never a TCP port, never a socket
 * another local user can open:
 * - `fd`: an inherited socketpair end (Linux, macOS); nothing on any filesystem.
 * - `pipe`: a Windows named pipe with an unguessable name, which QEMU creates
 *   as server and the launcher connects to at once.
 */
export type ChannelEndpoint = { kind: 'fd'; fd: number } | { kind: 'pipe'; name: string };

export interface MachineChannels {
  /** QMP monitor: the launcher's control of QEMU itself. */
  qmp: ChannelEndpoint;
  /** virtio-serial port `org.qemu.guest_agent.0`: qemu-guest-agent in the guest. */
  agent: ChannelEndpoint;
  /** The guest's serial console (ttyS0): sign of life, logs, attached terminal. */
  console: ChannelEndpoint;
  /**
   * Further launcher-only channels by id: the backing of each
   * MachineSpec.serialPorts and MachineSpec.nics entry, and raw streams
   * (MachineSpec.streams).
   */
  extra?: Record<string, ChannelEndpoint>;
}

/**
 * An extra virtio-serial port: the guest sees /dev/virtio-ports/<name>; the
 * launcher holds the other end as channel `id` (MachineChannels.extra).
 */
export interface SerialPortSpec {
  id: string;
  name: string;
}

/**
 * An extra virtio network card whose backend is the channel `id` itself
 * (QEMU's `-netdev socket` on the inherited descriptor): Ethernet frames,
 * each after a 4-byte big-endian length, between the guest and the launcher
 * alone. The namespace's 9P transport runs on one (src/ninep/ethernet-transport.ts).
 */
export interface NicSpec {
  id: string;
  /** The card's MAC address (aa:bb:cc:dd:ee:ff), by which the guest finds it. */
  mac: string;
}

/**
 * The guest's own network (docs/network.md): `none` (no card at all), `user`
 * (a virtio-net card on QEMU's user-mode networking: the guest reaches what
 * the host user reaches, the host's 127.0.0.1 as 10.0.2.2), or `isolated`
 * (the same card, restricted: DHCP answers and nothing else gets through).
 */
export type GuestNetwork = 'none' | 'user' | 'isolated';

/**
 * The guest's screen (src/vmm/qemu-args.ts, displayArgs): served by QEMU's
 * VNC on a UNIX socket in a private folder only the launcher reaches (the
 * console page bridges it; never a TCP port), or QEMU's own window. Both give
 * the guest a display card, a tablet and, with `clipboard`, the
 * qemu-vdagent clipboard port. Without one QEMU shows nothing.
 */
export type DisplaySpec = { kind: 'vnc'; socket: string; clipboard: boolean } | { kind: 'window'; backend: string; clipboard: boolean };

export interface DiskSpec {
  id: string;
  file: string;
  format: 'qcow2' | 'raw';
  readOnly: boolean;
}

export interface MachineSpec {
  name: string;
  hostOs: HostOs;
  accelerator: Accelerator;
  /** Omitted: `host` under a hardware accelerator, `max` under TCG. */
  cpuModel?: string;
  memoryMiB: number;
  /**
   * Guest RAM is the file QEMU inherits as this descriptor (src/vmm/guest-ram.ts),
   * shared with the launcher, which writes placed 9P reads into it.
   */
  ramFile?: { fd: number };
  cpus: number;
  kernel: string;
  initrd: string;
  cmdline: string;
  disks: DiskSpec[];
  network: GuestNetwork;
  /** The user-mode card's MAC (a guest's `guest config set mac`); absent: USER_NETWORK_MAC. */
  networkMac?: string;
  channels: MachineChannels;
  /** Start with vCPUs stopped (`-S`) so devices can be attached before `cont`. */
  startPaused: boolean;
  /**
   * Wait for a saved state (`-incoming defer`): QEMU loads it when told
   * `migrate-incoming` over QMP (src/vmm/migration.ts), then `cont` resumes
   * the guest where it was. The machine must match the one that was saved.
   */
  incoming?: boolean;
  /**
   * PCIe root ports `pvm-port0`…: q35's root bus takes no device_add, so a
   * device attached over QMP (the encrypted personal disk) plugs in there.
   */
  hotplugPorts?: number;
  /** The guest's screen; none without (`-display none`). */
  display?: DisplaySpec;
  /**
   * A virtio-scsi controller `scsi0` with no disks: the helper appliance's
   * sources are hot-plugged onto it over QMP (src/appliance/source-disk.ts).
   */
  scsiController?: boolean;
  /**
   * QEMU's VM generation id device (`vmgenid,guid=auto`): a new id on every
   * QEMU start, which a guest loaded from a saved state sees change and
   * reseeds its kernel's random-number generator from (Linux's vmgenid
   * driver). The helper appliance resumes one saved state many times.
   */
  vmgenid?: boolean;
  /** Extra virtio-serial ports (guest registry, …). */
  serialPorts?: SerialPortSpec[];
  /** Extra network cards backed by a launcher channel (the 9P namespace). */
  nics?: NicSpec[];
  /**
   * Ids of extra raw channels with no device: QEMU only inherits the
   * descriptor, which a QMP command then names as `fd:<number>` (migration).
   */
  streams?: string[];
}

export const AGENT_PORT_NAME = 'org.qemu.guest_agent.0';
/** The port spice-vdagent in the guest opens for the clipboard (QEMU's qemu-vdagent chardev serves it). */
export const VDAGENT_PORT_NAME = 'com.redhat.spice.0';
/** The agent port's device id: QEMU names it in VSERPORT_CHANGE events. */
export const AGENT_PORT_ID = 'agent-port';

/** The accelerators each host OS can offer, best first; TCG is always last. */
export const ACCELERATORS_BY_HOST: Record<HostOs, readonly Accelerator[]> = {
  linux: ['kvm', 'tcg'],
  windows: ['whpx', 'tcg'],
  darwin: ['hvf', 'tcg'],
};
