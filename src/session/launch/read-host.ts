// Launch step 2: the host probed once per launch (HostProfile); its
// accelerators and the verdicts this stick remembers for this host give the
// order accelerators are tried in.
import { hostFingerprint } from '../../platform/host-fingerprint.ts';
import type { HostProfile } from '../../hostprobe/host-profile.ts';
import { probeHost } from '../../hostprobe/probe-host.ts';
import type { StickLayout } from '../../stick/layout.ts';
import { type AcceleratorPlan, AcceleratorVerdicts, planAccelerators } from '../../vmm/accelerator-fallback.ts';
import type { LaunchContext } from './launch-context.ts';

export interface HostReading {
  profile: HostProfile;
  verdicts: AcceleratorVerdicts;
  plan: AcceleratorPlan;
}

export async function readHost(ctx: LaunchContext, stick: { layout: StickLayout }): Promise<HostReading> {
  const { layout } = stick;
  const profile = await probeHost({ adapter: ctx.host, stickRoot: layout.root });
  const verdicts = new AcceleratorVerdicts(layout.acceleratorVerdicts, profile.fingerprint ?? (await hostFingerprint(layout.hostSalt)));
  const plan = await planAccelerators(ctx.options.accelerator, profile.accelerators, verdicts);
  ctx.emit({ stage: 'accelerator', message: `accelerators to try: ${plan.candidates.join(', ')}` });
  return { profile, verdicts, plan };
}
