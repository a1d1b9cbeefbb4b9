// `launcher guest ready|boot|halt|reboot|shutdown|suspend NAME`: zoneadm's
// power verbs for a guest of the stick (docs/guests.md, "Booting, halting,
// suspending"). Each checks the guest's state against the table
// (src/guests/guest-states.ts, exit 30 naming it) after the person signed in
// and their right was checked (exit 32), then acts through the existing paths:
// a background session as `run --detach` starts it (held before its boot for
// `ready`, src/guests/ready-gate.ts), or the running session's control channel.
import type { Command } from 'commander';
import type { UnlockedUser } from '../../auth/users.ts';
import type { Right } from '../../guests/guest-admins.ts';
import type { GuestCommand } from '../../guests/guest-states.ts';
import type { GuestView } from '../../guests/guest-view.ts';
import { sendControl } from '../../session/control-client.ts';
import { type StickLayout, stickLayout } from '../../stick/layout.ts';
import { guestSessionLayout } from '../../stick/session-locks.ts';
import { isStale, readLock } from '../../stick/lock.ts';
import { waitForExit } from '../running-guest.ts';
import { openStick, resolveStickRoot } from '../../stick/stick-root.ts';
import type { Accelerator } from '../../vmm/machine-spec.ts';
import { ExitCode, GuestStateError } from '../../errors.ts';
import type { Output } from '../output.ts';
import { failpoint } from '../../primitives/failpoint.ts';
import { signInOptions } from '../session-rights.ts';
import { acceleratorOption, jsonOption, stickOption } from './options.ts';

interface PowerOptions {
  stick?: string;
  user?: string;
  passphraseStdin?: boolean;
  accel: Accelerator | 'auto';
  json?: boolean;
}

/** Saving a big guest to a slow stick takes minutes; a shutdown ladder up to a minute. */
const SUSPEND_TIMEOUT_MS = 20 * 60_000;
const SESSION_EXIT_TIMEOUT_MS = 30_000;

/** The guest's reconciled state: its record's, or an implicit payload guest's (a stick made before guests). */
async function stateOf(layout: StickLayout, name: string): Promise<GuestView> {
  const { requireGuest } = await import('../../guests/guest-lifecycle.ts');
  try {
    return await requireGuest(layout, name);
  } catch (error) {
    const { listGuests } = await import('../../guests/guest-view.ts');
    const implicit = (await listGuests(layout, { repair: false })).find((view) => view.name === name && view.implicit);
    if (implicit) return implicit;
    throw error;
  }
}

/** The guest's state, refused with exit 30 naming it unless `command` accepts it (src/guests/guest-states.ts). */
export async function checkPower(layout: StickLayout, name: string, command: GuestCommand): Promise<GuestView> {
  const view = await stateOf(layout, name);
  const { requireState } = await import('../../guests/guest-states.ts');
  requireState(command, name, view.state, view.reason);
  return view;
}

/**
 * Signs in (always for ready/boot, which need the user's key; on a stick with
 * an owner for the rest), checks the right, then the state. On a stick with
 * an owner the state is checked only after the right, so a person refused a
 * guest never learns what state it is in; without one, before any prompt.
 */
async function admit(
  out: Output,
  layout: StickLayout,
  name: string,
  command: GuestCommand,
  right: Right,
  options: PowerOptions,
  needsUser: boolean,
): Promise<{ view: GuestView; user: UnlockedUser | undefined }> {
  const { readAdmins, authorize } = await import('../../guests/guest-admins.ts');
  const admins = await readAdmins(layout);
  if (admins.owner === undefined) await checkPower(layout, name, command);
  let user: UnlockedUser | undefined;
  if (needsUser || admins.owner !== undefined || options.user !== undefined || options.passphraseStdin) {
    const { loginForLaunch } = await import('../login.ts');
    user = await loginForLaunch(out, layout.root, options);
  }
  try {
    authorize(admins, user?.name, { guest: name, right, says: `guest ${command}` });
    const view = await checkPower(layout, name, command);
    if (!needsUser) user?.diskKey.fill(0);
    return { view, user: needsUser ? user : undefined };
  } catch (error) {
    user?.diskKey.fill(0);
    throw error;
  }
}

/** A background session for `name`, as `run --detach` starts it; held before its boot with `hold`. */
async function startBackground(out: Output, layout: StickLayout, name: string, user: UnlockedUser, options: PowerOptions, hold: boolean) {
  const [{ spawnDetachedSession }, { checkBeforeLaunch }, { currentHostAdapter }, { launchOfGuest }, { settleSavedState }] = await Promise.all([
    import('../detach.ts'),
    import('../../stick/stick-manifest.ts'),
    import('../../hostprobe/current-host.ts'),
    import('./session.ts'),
    import('../saved-state-choice.ts'),
  ]);
  const { plan } = await launchOfGuest(layout.root, name);
  await checkBeforeLaunch(layout.root, plan.payload ?? name, currentHostAdapter().platform);
  let handed = false;
  try {
    return await spawnDetachedSession(
      { stickRoot: layout.root, guest: name, accel: options.accel, hold },
      (message) => (message.notice ? out.notice(message.message) : out.info(message.message)),
      async () => {
        // A suspended guest resumes (the session does); `ready` never gets here with one (its state is refused).
        await settleSavedState(out, layout.root, name, user, {}, options.accel);
        handed = true;
        return user;
      },
    );
  } finally {
    if (!handed) user.diskKey.fill(0);
  }
}

/** The session running `name`, or a refusal naming the guest that runs instead. */
async function sessionOf(layout: StickLayout, name: string) {
  // Each guest's session holds its own lock (several may run: src/stick/session-locks.ts).
  const holder = await readLock(guestSessionLayout(layout, name));
  if (!holder || isStale(holder) || holder.guest !== name || !holder.control)
    throw new GuestStateError(`guest ${name} has no session to reach${holder?.guest && holder.guest !== name ? ` (${holder.guest} runs)` : ''}`, {
      hint: 'launcher guest list shows what runs',
      details: { reason: 'no-session', guest: name },
    });
  return holder;
}

/** The session process lets the stick go last: a verb that ends it returns once it has. */
async function awaitEnd(out: Output, pid: number): Promise<void> {
  if (await waitForExit(pid, SESSION_EXIT_TIMEOUT_MS)) return;
  out.notice(`the session process (pid ${pid}) has not exited yet`);
  process.exitCode = ExitCode.timeout;
}

export function registerGuestPower(guest: Command, output: () => Output): void {
  const verb = (name: string, description: string) => {
    const command = guest.command(name).description(description).argument('<name>');
    stickOption(command);
    signInOptions(command);
    jsonOption(command);
    return command;
  };
  const layoutOf = async (options: PowerOptions) => {
    const root = resolveStickRoot(options.stick);
    await openStick(root);
    return stickLayout(root);
  };

  const ready = verb('ready', 'set the platform up (QEMU paused, disks and channels in place) without booting: installed → ready');
  acceleratorOption(ready);
  ready.action(async (name: string, options: PowerOptions) => {
    const out = output();
    const layout = await layoutOf(options);
    const { user } = await admit(out, layout, name, 'ready', 'manage', options, true);
    failpoint('ready:signed-in');
    const held = (await startBackground(out, layout, name, user!, options, true)) as unknown as { pid: number; heldMs: number };
    out.data({ name, state: 'ready', pid: held.pid, readyMs: held.heldMs });
    out.line(`${name} is ready (session pid ${held.pid}, platform up in ${(held.heldMs / 1000).toFixed(1)} s): launcher guest boot ${name} boots it`);
  });

  const boot = verb('boot', 'boot a guest: from ready (continue), installed (ready, then boot) or suspended (resume it)');
  acceleratorOption(boot);
  boot.action(async (name: string, options: PowerOptions) => {
    const out = output();
    const layout = await layoutOf(options);
    const started = performance.now();
    const view = await stateOf(layout, name).catch(() => undefined);
    const { view: admitted, user } = await admit(out, layout, name, 'boot', 'manage', options, view?.state !== 'ready');
    if (admitted.state === 'ready') {
      await sessionOf(layout, name);
      const status = await sendControl(guestSessionLayout(layout, name), 'boot', {});
      const ms = Math.round(performance.now() - started);
      out.data({ name, state: 'running', from: 'ready', bootMs: status.bootMs, ms });
      out.line(`${name} is running (booted from ready in ${(ms / 1000).toFixed(1)} s)`);
      return;
    }
    if (!user) throw new GuestStateError(`guest ${name} left ready while boot was starting: it is ${admitted.state}`, { hint: 'try again' });
    const status = await startBackground(out, layout, name, user, options, false);
    out.data({
      name,
      state: 'running',
      from: admitted.state,
      pid: status.pid,
      readyMs: status.readyMs,
      ...(status.resumed ? { resumed: status.resumed } : {}),
    });
    out.line(`${name} is ${status.resumed ? 'resumed and ' : ''}running (session pid ${status.pid}); ready in ${(status.readyMs / 1000).toFixed(1)} s`);
  });

  const halt = verb('halt', 'power the guest off now (QEMU ends): ready, running, shutting down or down → installed');
  halt.action(async (name: string, options: PowerOptions) => {
    const out = output();
    const layout = await layoutOf(options);
    await admit(out, layout, name, 'halt', 'manage', options, false);
    const holder = await sessionOf(layout, name);
    const result = await sendControl(guestSessionLayout(layout, name), 'stop', { force: true });
    await awaitEnd(out, holder.pid);
    out.data({ name, state: 'installed', ms: result.ms, step: result.step });
    out.line(`${name} halted`);
  });

  const reboot = verb('reboot', 'restart the guest in the same session: running → running');
  reboot.action(async (name: string, options: PowerOptions) => {
    const out = output();
    const layout = await layoutOf(options);
    await admit(out, layout, name, 'reboot', 'manage', options, false);
    await sessionOf(layout, name);
    const result = await sendControl(guestSessionLayout(layout, name), 'reboot', {});
    out.data({ name, state: 'running', ms: result.ms });
    out.line(`${name} rebooted in ${(result.ms / 1000).toFixed(1)} s`);
  });

  const shutdown = verb('shutdown', 'shut the guest down cleanly (its agent, then ACPI): running → shutting down → installed');
  shutdown.action(async (name: string, options: PowerOptions) => {
    const out = output();
    const layout = await layoutOf(options);
    await admit(out, layout, name, 'shutdown', 'manage', options, false);
    const holder = await sessionOf(layout, name);
    const result = await sendControl(guestSessionLayout(layout, name), 'stop', { force: false });
    await awaitEnd(out, holder.pid);
    out.data({ name, state: 'installed', ms: result.ms, step: result.step });
    out.line(`${name} shut down in ${(result.ms / 1000).toFixed(1)} s (ended by: ${result.step})`);
  });

  const suspend = verb('suspend', "save the running guest's state to the stick (encrypted): running → suspended");
  suspend.action(async (name: string, options: PowerOptions) => {
    const out = output();
    const layout = await layoutOf(options);
    await admit(out, layout, name, 'suspend', 'suspend', options, false);
    const holder = await sessionOf(layout, name);
    const result = await sendControl(guestSessionLayout(layout, name), 'suspend', {}, { timeoutMs: SUSPEND_TIMEOUT_MS });
    await awaitEnd(out, holder.pid);
    const { describeSuspend } = await import('./eject.ts');
    out.data({ name, state: 'suspended', suspend: result });
    for (const line of describeSuspend(result, layout.root)) out.line(line);
  });
}
