// Launch step 6: the machine, planned from the payload, the host's
// accelerators, the guest's size and what the features bring: every channel
// gets its descriptor (built once, for QEMU and for the features that use
// them), each serial port, card and raw stream its device, the kernel command
// line its words, the payload's network card its mode (isolated when a
// feature says so: src/session/network-setting.ts). A feature with a shape
// (a resume) fixes memory, vCPUs, CPU model and the one accelerator. Nothing
// here starts anything.
import type { GuestPayload } from '../../payload/guest-payload.ts';
import type { AcceleratorPlan } from '../../vmm/accelerator-fallback.ts';
import type { HostOs, MachineSpec } from '../../vmm/machine-spec.ts';
import { PORTABLE_CPU_MODEL } from '../../vmm/migration.ts';
import { fdChannels } from '../../vmm/qemu-process.ts';
import type { ExtraChannel } from '../extra-channel.ts';
import { guestNetwork, networkCmdlineWord } from '../network-setting.ts';
import type { MachineSizing } from '../sizing.ts';
import type { LaunchFeature, Restore } from './feature.ts';

export interface MachinePlan {
  /** Everything of QEMU's machine but the accelerator, which each boot attempt sets. */
  spec: Omit<MachineSpec, 'accelerator'>;
  /** The accelerators to try, in order. */
  accelerators: AcceleratorPlan;
  /** Every feature's channels, in the order of `spec.channels.extra`. */
  channels: ExtraChannel[];
  /** Some feature wants the guest's RAM as a shared file. */
  sharesGuestRam: boolean;
  restore?: Restore;
}

export function planMachine(args: {
  guest: string;
  hostOs: HostOs;
  payload: Pick<GuestPayload, 'manifest' | 'kernel' | 'initrd'>;
  accelerators: AcceleratorPlan;
  sizing: Pick<MachineSizing, 'memoryMiB' | 'cpus'>;
  features: readonly LaunchFeature[];
  /** The guest's card's MAC (its configuration's); absent: the stick's default. */
  networkMac?: string;
}): MachinePlan {
  const { payload, features } = args;
  const shape = features.find((feature) => feature.shape)?.shape;
  const restore = features.find((feature) => feature.restore)?.restore;
  const memoryMiB = shape?.memoryMiB ?? args.sizing.memoryMiB;
  const cpus = shape?.cpus ?? args.sizing.cpus;
  for (const feature of features) feature.planned?.({ memoryMiB, cpus });
  const channels = features.flatMap((feature) => feature.channels ?? []);
  const cmdline = features.flatMap((feature) => feature.cmdline ?? []);
  const network = guestNetwork(
    payload.manifest.devices.network,
    features.some((feature) => feature.isolatesNetwork),
  );
  if (network !== 'none') cmdline.push(networkCmdlineWord(args.networkMac));
  const display = features.find((feature) => feature.display)?.display;
  const hotplugPorts = features.reduce((sum, feature) => sum + (feature.hotplugPorts ?? 0), 0);
  return {
    spec: {
      name: `pocketvm-${args.guest}`,
      hostOs: args.hostOs,
      cpuModel: shape ? shape.cpuModel : PORTABLE_CPU_MODEL,
      memoryMiB,
      cpus,
      kernel: payload.kernel,
      initrd: payload.initrd,
      cmdline: [payload.manifest.cmdline, ...cmdline].join(' '),
      disks: [],
      network,
      ...(args.networkMac ? { networkMac: args.networkMac } : {}),
      channels: fdChannels(channels.map((channel) => channel.id)),
      serialPorts: channels.flatMap((channel) => (channel.kind === 'serial' ? [{ id: channel.id, name: channel.name ?? channel.id }] : [])),
      nics: channels.flatMap((channel) => (channel.kind === 'nic' ? [{ id: channel.id, mac: channel.mac ?? '' }] : [])),
      streams: channels.flatMap((channel) => (channel.kind === 'stream' ? [channel.id] : [])),
      startPaused: true,
      ...(display ? { display } : {}),
      ...(hotplugPorts > 0 ? { hotplugPorts } : {}),
      ...(shape?.incoming ? { incoming: true } : {}),
    },
    // A saved state loads only under the accelerator it was saved under.
    accelerators: shape ? { candidates: [shape.accelerator], notes: args.accelerators.notes } : args.accelerators,
    channels,
    sharesGuestRam: features.some((feature) => feature.sharesGuestRam),
    ...(restore ? { restore } : {}),
  };
}
