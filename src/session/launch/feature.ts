// A feature of a launch (the user's registry, the namespace, `launcher exec`,
// a resume, the personal disk, ...) as the launch sees it: what it adds to the
// machine (channels, kernel command-line words, devices) and what it does while
// QEMU is paused or once the guest is up. The launch steps only collect these;
// they know no feature by name, so a new feature is a new provider, not a new
// branch in the launch.
import type { Duplex } from 'node:stream';
import type { Machine } from '../../vmm/machine.ts';
import type { Accelerator, DisplaySpec, MachineChannels } from '../../vmm/machine-spec.ts';
import type { QmpClient } from '../../vmm/qmp-client.ts';
import type { PocketError } from '../../errors.ts';
import type { ExtraChannel } from '../extra-channel.ts';
import type { ResumeReport } from '../resume.ts';
import type { SizingOverrides } from '../sizing.ts';

/** A feature that fixes the machine's shape (a resume: the saved machine's). */
export interface MachineShape {
  memoryMiB: number;
  cpus: number;
  cpuModel: string;
  /** The one accelerator to boot under (a saved state loads only under its own). */
  accelerator: Accelerator;
  /** QEMU waits for a saved state (`-incoming defer`). */
  incoming: true;
}

/** A feature that starts the guest from a saved state instead of booting it. */
export interface Restore {
  /** The boot message for an attempt under `accelerator`. */
  describe(accelerator: Accelerator): string;
  /** Once the guest answers: what the resume did (its clock set, the state file gone). */
  finish(machine: Machine): Promise<ResumeReport>;
  /** Any failure of the launch, as the one line a person reads (the state is kept). */
  explain(error: unknown): PocketError;
}

/** What a feature may use while QEMU is paused, after every channel is open. */
export interface PausedMachine {
  qmp: QmpClient;
  /** The launcher's ends of the channels, by id. */
  streams: Readonly<Record<string, Duplex>>;
  /** The channels as QEMU was given them (descriptors by id). */
  channels: MachineChannels;
}

/** What a feature learns once the guest answers. */
export interface ReadyMachine {
  machine: Machine;
  /** The guest was resumed from a saved state, not booted. */
  resumed: boolean;
}

export interface LaunchFeature {
  /** For messages and tests. */
  readonly name: string;
  /** The feature's channels to the guest, in the order QEMU gets them. */
  readonly channels?: readonly ExtraChannel[];
  /** Words for the guest kernel's command line. */
  readonly cmdline?: readonly string[];
  /** Asks for the guest's RAM as a file the launcher shares (placed 9P reads). */
  readonly sharesGuestRam?: boolean;
  /** The guest's memory and vCPUs as this feature would have them (the registry's Machine values). */
  readonly sizing?: SizingOverrides;
  /** Keeps the guest's network card but lets nothing through it (the registry's Network\Enabled = false). */
  readonly isolatesNetwork?: boolean;
  /** The guest's screen (src/session/features/display-feature.ts). */
  readonly display?: DisplaySpec;
  /** PCIe ports kept free for devices plugged in while QEMU is paused. */
  readonly hotplugPorts?: number;
  readonly shape?: MachineShape;
  readonly restore?: Restore;
  /** Told the guest's final size once the machine is planned (the stick keeps a suspend's worth free). */
  planned?(machine: { memoryMiB: number; cpus: number }): void;
  /** While QEMU is paused, after the channels are open; features attach in their order. */
  attach?(paused: PausedMachine): Promise<void>;
  /** Once the guest answers, in feature order. */
  ready?(ready: ReadyMachine): Promise<void>;
  /** A failure the feature saw that explains the launch failing (a corrupt block of the base: QEMU was quit for it). */
  failure?(): PocketError | undefined;
}
