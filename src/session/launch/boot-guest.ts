// Launch step 7: QEMU started paused, under each planned accelerator in turn
// (src/vmm/accelerator-fallback.ts). For each attempt: the guest's RAM as a
// shared file if a feature asked for it, every channel's service opened on
// its stream, the features' attach steps (disk, saved state, ...), `cont`,
// and the guest agent's answer. Then the features hear the guest is up.
import type { Duplex } from 'node:stream';
import { type AcceleratorVerdicts, bootWithFallback } from '../../vmm/accelerator-fallback.ts';
import { GuestLife } from '../../vmm/guest-life.ts';
import { GuestRamFile } from '../../vmm/guest-ram.ts';
import { type BootAttemptOptions, Machine } from '../../vmm/machine.ts';
import type { StickLock } from '../../stick/lock.ts';
import type { Accelerator } from '../../vmm/machine-spec.ts';
import type { QemuBinaries } from '../../vmm/qemu-binary.ts';
import type { GuestPayload } from '../../payload/guest-payload.ts';
import type { ChannelMachine, ExtraChannel } from '../extra-channel.ts';
import type { ResumeReport } from '../resume.ts';
import type { LaunchFeature } from './feature.ts';
import type { LaunchContext } from './launch-context.ts';
import type { MachinePlan } from './plan-machine.ts';
import type { Teardown } from './teardown.ts';

export interface BootedGuest {
  machine: Machine;
  /** Set when the guest was resumed from a saved state. */
  resumed?: ResumeReport;
}

/** Opens each channel's service on its stream (while QEMU is paused); each closes at teardown. */
async function openChannels(
  channels: readonly ExtraChannel[],
  streams: Readonly<Record<string, Duplex>>,
  teardown: Teardown,
  machine: ChannelMachine,
): Promise<void> {
  for (const channel of channels) {
    const stream = streams[channel.id];
    if (!stream || !channel.open) continue;
    const service = await channel.open(stream, machine);
    if (service) teardown.add(() => service.close());
  }
}

interface BootArgs {
  plan: MachinePlan;
  features: readonly LaunchFeature[];
  payload: Pick<GuestPayload, 'manifest'>;
  qemu: QemuBinaries;
  verdicts: AcceleratorVerdicts;
  logs: { qemu: string; console: string };
  /** A line in the guest's QEMU log, from the launcher. */
  log: (message: string) => void;
  signal: AbortSignal | undefined;
  /** The stick lock, for a held launch (`guest ready`) to name its control address in. */
  lock?: StickLock;
}

/** `guest ready`: the launch's hold, given the lock as well. */
function holdWith(hold: NonNullable<LaunchContext['options']['hold']>, lock: StickLock): NonNullable<BootAttemptOptions['hold']> {
  return ({ console, kill }) => hold({ console, kill, lock });
}

export async function bootGuest(ctx: LaunchContext, args: BootArgs): Promise<BootedGuest> {
  const { restore } = args.plan;
  const machine = await bootWithFallback({
    plan: args.plan.accelerators,
    verdicts: args.verdicts,
    onFallback: ctx.notice,
    boot: (accelerator) => bootAttempt(ctx, args, accelerator),
  });
  const resumed = restore ? await restore.finish(machine) : undefined;
  if (resumed)
    ctx.emit({
      stage: 'boot',
      message: `resumed ${ctx.options.guest} in ${(resumed.loadMs / 1000).toFixed(1)} s${resumed.clockStepMs === null ? '; its clock could not be corrected' : `; its clock moved ${(resumed.clockStepMs / 1000).toFixed(0)} s forward`}`,
    });
  for (const feature of args.features) await feature.ready?.({ machine, resumed: resumed !== undefined });
  return { machine, ...(resumed ? { resumed } : {}) };
}

/** One attempt under one accelerator; what it opens joins the launch's teardown. */
async function bootAttempt(ctx: LaunchContext, args: BootArgs, accelerator: Accelerator): Promise<Machine> {
  const { plan, features, payload, qemu } = args;
  const { teardown } = ctx;
  // The namespace's reads are placed in the guest's pages when its RAM is
  // a file the launcher shares; otherwise the guest copies them.
  const ram = plan.sharesGuestRam ? GuestRamFile.create(plan.spec.memoryMiB) : undefined;
  const guestRam = ram instanceof GuestRamFile ? ram : undefined;
  if (ram && !(ram instanceof GuestRamFile)) args.log(`guest RAM not shared, namespace reads are copied in the guest: ${ram.reason}`);
  ctx.emit({
    stage: 'boot',
    message: plan.restore
      ? plan.restore.describe(accelerator)
      : `booting ${ctx.options.guest} under ${accelerator} (${plan.spec.memoryMiB} MiB, ${plan.spec.cpus} vCPU)`,
  });
  const life = new GuestLife();
  const booting = Machine.boot({
    ...(guestRam ? { guestRam } : {}),
    life,
    spec: { ...plan.spec, accelerator },
    binary: qemu.system,
    ...(qemu.prefixArgs ? { binaryPrefixArgs: qemu.prefixArgs } : {}),
    ...(qemu.env ? { binaryEnv: qemu.env } : {}),
    host: ctx.host,
    logs: args.logs,
    attach: async (qmp, streams) => {
      await openChannels(plan.channels, streams, teardown, guestRam ? { guestRam, life, qmp } : { life, qmp });
      for (const feature of features) await feature.attach?.({ qmp, streams, channels: plan.spec.channels });
    },
    ...(plan.restore ? { resumed: true } : {}),
    ...(ctx.options.hold && args.lock ? { hold: holdWith(ctx.options.hold, args.lock) } : {}),
    // Under a hardware accelerator the kernel prints within a second; a
    // silent guest after this long is a hung accelerator, not a slow boot.
    signOfLifeTimeoutMs: accelerator === 'tcg' ? payload.manifest.readyTimeoutSeconds * 1000 : 15_000,
    readyTimeoutMs: payload.manifest.readyTimeoutSeconds * 1000,
    ...(args.signal ? { signal: args.signal } : {}),
  });
  if (!guestRam) return booting;
  try {
    const machine = await booting;
    // Closed with the channels: the launcher's descriptor is only for writing reads into it.
    teardown.add(() => guestRam.close());
    return machine;
  } catch (error) {
    guestRam.close();
    throw error;
  }
}
