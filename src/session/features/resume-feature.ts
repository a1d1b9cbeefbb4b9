// A suspended guest of this user, as a launch feature: it resumes instead of
// booting (src/session/resume.ts). It brings the state's stream channel, the
// saved machine's shape (memory, vCPUs, CPU model, accelerator, -incoming),
// loads the state while QEMU is paused (after the personal disk is plugged in)
// and, once the guest answers, corrects its clock and deletes the state file.
import type { HostProfile } from '../../hostprobe/host-profile.ts';
import type { StickLayout } from '../../stick/layout.ts';
import type { Accelerator } from '../../vmm/machine-spec.ts';
import type { QemuBinaries } from '../../vmm/qemu-binary.ts';
import type { LaunchFeature } from '../launch/feature.ts';
import { planResume } from '../resume.ts';

/** Undefined when there is no saved state; throws when there is one that cannot be resumed here. */
export async function resumeFeature(args: {
  layout: StickLayout;
  guest: string;
  user: { name: string; id: string };
  stateKey: Buffer;
  qemu: QemuBinaries;
  accelerators: readonly Accelerator[];
  profile: Pick<HostProfile, 'memory' | 'fingerprint'>;
}): Promise<LaunchFeature | undefined> {
  const { profile } = args;
  const resume = await planResume({
    layout: args.layout,
    guest: args.guest,
    user: args.user,
    stateKey: args.stateKey,
    qemu: args.qemu,
    accelerators: args.accelerators,
    memory: profile.memory,
    fingerprint: profile.fingerprint,
  });
  if (!resume) return undefined;
  const { meta } = resume;
  return {
    name: 'resume',
    channels: [resume.channel],
    shape: { memoryMiB: meta.memoryMiB, cpus: meta.cpus, cpuModel: meta.cpuModel, accelerator: meta.accelerator, incoming: true },
    attach: ({ qmp, streams, channels }) => resume.load(qmp, streams, channels),
    restore: {
      describe: (accelerator) =>
        `resuming ${args.guest}, suspended ${meta.createdAt} on ${resume.sameHost ? 'this PC' : 'another PC'} (${(resume.bytes / 1048576).toFixed(0)} MiB of state, ${accelerator})`,
      finish: (machine) => resume.finish(machine),
      explain: (error) => resume.explain(error),
    },
  };
}
