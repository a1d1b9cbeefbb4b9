// Launch step 8: the guest is ready. The lock says so, the session is built
// whole from what the steps produced, the removal guard now stops it if the
// stick is pulled out, and the stick-full watch starts. The channels are
// served from here until teardown (the CLI adds its control server).
import type { GuestPayload } from '../../payload/guest-payload.ts';
import type { StickLayout } from '../../stick/layout.ts';
import type { StickLock } from '../../stick/lock.ts';
import type { RecoveryReport } from '../crash-recovery.ts';
import { Session } from '../session.ts';
import { watchStickFull } from '../stick-full.ts';
import type { RemovalGuard } from '../surprise-removal.ts';
import type { BootedGuest } from './boot-guest.ts';
import type { LaunchContext } from './launch-context.ts';
import type { LaunchFeatures } from './open-features.ts';

export async function startSession(
  ctx: LaunchContext,
  args: {
    stick: { layout: StickLayout; lock: StickLock; payload: GuestPayload };
    acceleratorNotes: string[];
    preparedMs: number;
    recovery: RecoveryReport | undefined;
    features: LaunchFeatures;
    booted: BootedGuest;
    guard: Pick<RemovalGuard, 'protect' | 'removal'> | undefined;
  },
): Promise<Session> {
  const { stick, features, booted, guard } = args;
  const { machine } = booted;
  await stick.lock.update({ state: 'ready' });
  const readyMs = Math.round(performance.now() - ctx.started);
  ctx.emit({ stage: 'ready', message: `${ctx.options.guest} is ready (${(readyMs / 1000).toFixed(1)} s)` });
  const user = ctx.user?.name;
  guard?.protect({ machine, user });
  const session = new Session({
    layout: stick.layout,
    lock: stick.lock,
    payload: stick.payload,
    machine,
    timings: { preparedMs: args.preparedMs, readyMs, boot: machine.timings },
    acceleratorNotes: args.acceleratorNotes,
    ...(user !== undefined ? { user } : {}),
    execs: features.execs,
    ...(features.registry ? { registry: features.registry } : {}),
    ...(args.recovery ? { recovery: args.recovery } : {}),
    ...(features.stateContext ? { stateContext: features.stateContext } : {}),
    ...(booted.resumed ? { resumed: booted.resumed } : {}),
    ...(features.limits ? { limits: features.limits } : {}),
    ...(features.vncSocket ? { vncSocket: features.vncSocket } : {}),
    teardown: ctx.teardown,
    ...(guard ? { removalWatch: guard } : {}),
  });
  const stopWatchingSpace = watchStickFull(session, ctx.notice);
  session.onTeardown(async () => stopWatchingSpace());
  return session;
}
