// Launching a session, as a pipeline of small steps (docs/design.md, "The journey
// of one launch (data flows one way)"); each step is a function of its own file with a typed input
// and output:
//
//   1 prepareStick   the stick opened, QEMU found, the lock taken, the payload checked
//   2 readHost       the host probed once; the accelerators to try
//   3 guardStick     a pulled stick stops the launch from here on
//   4 signIn         the person, and a check of what a crashed session left
//   5 openFeatures   registry, tables → namespace, exec, resume: providers of channels and kernel words
//   6 planMachine    the machine spec from the payload, the sizing and the features
//   7 bootGuest      QEMU paused → channels and attach steps → cont → the agent answers
//   8 startSession   the Session, built whole; the guard and the stick-full watch on it
//
// What a step opens it adds to the launch's teardown; when a step fails, the
// launch closes all of it in reverse, releases the lock (or, with the stick
// gone, lets it go in memory only) and fails with one error. On success the
// session takes the teardown over and runs it when the guest is gone.
import { UsageError } from '../../errors.ts';
import { currentHostAdapter } from '../../hostprobe/current-host.ts';
import type { HostAdapter } from '../../hostprobe/host-adapter.ts';
import type { StickLock } from '../../stick/lock.ts';
import type { Session } from '../session.ts';
import type { RemovalGuard } from '../surprise-removal.ts';
import { bootGuest } from './boot-guest.ts';
import type { LaunchFeature, Restore } from './feature.ts';
import { guardStick } from './guard-stick.ts';
import { type LaunchContext, launchContext } from './launch-context.ts';
import type { LaunchOptions } from './launch-options.ts';
import { openFeatures } from './open-features.ts';
import { planMachine } from './plan-machine.ts';
import { prepareStick } from './prepare-stick.ts';
import { readHost } from './read-host.ts';
import { signIn } from './sign-in.ts';
import { startSession } from './start-session.ts';

/** The steps, in order; tests pass their own to check the pipeline itself. */
export interface LaunchSteps {
  prepareStick: typeof prepareStick;
  readHost: typeof readHost;
  guardStick: typeof guardStick;
  signIn: typeof signIn;
  openFeatures: typeof openFeatures;
  planMachine: typeof planMachine;
  bootGuest: typeof bootGuest;
  startSession: typeof startSession;
}

export const LAUNCH_STEPS: LaunchSteps = { prepareStick, readHost, guardStick, signIn, openFeatures, planMachine, bootGuest, startSession };

type Guard = Pick<RemovalGuard, 'signal' | 'removed' | 'stop' | 'bootError' | 'protect' | 'removal'>;

export async function launchSession(options: LaunchOptions, steps: LaunchSteps = LAUNCH_STEPS, host: HostAdapter = currentHostAdapter()): Promise<Session> {
  if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(options.guest))
    throw new UsageError(`"${options.guest}" is not a guest name`, 'guest names are lower-case letters, digits and -');
  const ctx = launchContext(options, host);
  const stick = await steps.prepareStick(ctx);
  let guard: Guard | undefined;
  let restore: Restore | undefined;
  let opened: LaunchFeature[] = [];
  try {
    const hostReading = await steps.readHost(ctx, stick);
    const preparedMs = Math.round(performance.now() - ctx.started);
    const started = await steps.guardStick(stick, hostReading);
    guard = started;
    // The oldest hook: it stops last, so a removal during the rest of teardown is still seen.
    if (started) ctx.teardown.add(() => started.stop());
    const signedIn = await steps.signIn(ctx, stick, guard);
    const features = await steps.openFeatures(ctx, stick, hostReading, signedIn.user);
    opened = features.features;
    const plan = steps.planMachine({
      guest: options.guest,
      hostOs: host.os,
      payload: stick.payload,
      accelerators: hostReading.plan,
      sizing: features.sizing,
      features: features.features,
      ...(options.platform?.mac ? { networkMac: options.platform.mac } : {}),
    });
    restore = plan.restore;
    const booted = await steps.bootGuest(ctx, {
      plan,
      features: features.features,
      payload: stick.payload,
      qemu: stick.qemu,
      verdicts: hostReading.verdicts,
      logs: features.logs,
      log: (message) => features.transportLog.line(`launcher: ${message}`),
      signal: bootSignal(options.signal, guard?.signal),
      lock: stick.lock,
    });
    return await steps.startSession(ctx, { stick, acceleratorNotes: hostReading.plan.notes, preparedMs, recovery: signedIn.recovery, features, booted, guard });
  } catch (error) {
    // A feature that ended the boot itself (the base's bad block) says why, not QEMU's exit.
    const explained = opened.map((feature) => feature.failure?.()).find((failure) => failure !== undefined);
    throw await failedLaunch(ctx, stick.lock, guard, restore, explained ?? error);
  } finally {
    // QEMU holds the disk key now; the launcher's copy goes.
    ctx.user?.diskKey.fill(0);
  }
}

/** The caller's cancel and a pulled stick both stop the boot. */
function bootSignal(cancel: AbortSignal | undefined, removed: AbortSignal | undefined): AbortSignal | undefined {
  return cancel && removed ? AbortSignal.any([cancel, removed]) : (cancel ?? removed);
}

/** Closes what the launch opened and lets the stick go; the error to fail the launch with. */
async function failedLaunch(ctx: LaunchContext, lock: StickLock, guard: Guard | undefined, restore: Restore | undefined, error: unknown): Promise<unknown> {
  guard?.stop();
  if (guard?.removed) {
    // The stick is gone: nothing more is written to it.
    lock.abandon();
    await ctx.teardown.run();
    return guard.bootError(ctx.user !== undefined);
  }
  await ctx.teardown.run();
  await lock.release();
  // A launch that was resuming says so, and that the state is still there.
  return restore ? restore.explain(error) : error;
}
