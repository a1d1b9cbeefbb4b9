// `launcher run`: boot a guest and attach this terminal to its console
// (Ctrl-] shuts the guest down), or with --detach leave it running in the
// background and return once it is ready.
import type { Command } from 'commander';
import { GuestFailedError, StickRemovedError, UsageError } from '../../errors.ts';
import { resolveStickRoot } from '../../stick/stick-root.ts';
import type { Accelerator } from '../../vmm/machine-spec.ts';
import { spawnDetachedSession } from '../detach.ts';
import type { Output } from '../output.ts';
import { type LoginFlags, loginForLaunch, loginOptions } from '../login.ts';
import { type SavedStateFlags, savedStateOptions, settleSavedState } from '../saved-state-choice.ts';
import { acceleratorOption, guestOption, jsonOption, stickOption } from './options.ts';
import { isDevCheckout } from '../../stick/stick-root.ts';
import type { Session } from '../../session/session.ts';

/** Ctrl-]: the telnet/ssh-style escape; the guest never sees it. */
export const DETACH_KEY = 0x1d;

interface RunOptions extends LoginFlags, SavedStateFlags {
  stick?: string;
  guest: string;
  accel: Accelerator | 'auto';
  detach?: boolean;
  root?: boolean;
  json?: boolean;
}

async function attachConsole(session: Session, out: Output): Promise<void> {
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  out.info(`attached to ${session.guest}'s console; press Ctrl-] to shut the guest down`);
  if (raw) stdin.setRawMode(true);
  const onConsole = (chunk: Buffer) => process.stdout.write(chunk);
  const onInput = (chunk: Buffer) => {
    const escape = chunk.indexOf(DETACH_KEY);
    if (escape >= 0) {
      if (escape > 0) session.machine.console.write(chunk.subarray(0, escape));
      out.info('Ctrl-]: shutting the guest down');
      void session.stop();
      return;
    }
    session.machine.console.write(chunk);
  };
  session.machine.console.on('data', onConsole);
  stdin.on('data', onInput);
  // The guest's console follows this terminal's size (stty size, full-screen programs, SIGWINCH).
  const { setConsoleSize } = await import('../../session/console-size.ts');
  const onResize = () => void setConsoleSize(session, process.stdout.rows, process.stdout.columns);
  if (process.stdout.isTTY) {
    onResize();
    process.stdout.on('resize', onResize);
  }
  // A passphrase prompt leaves stdin explicitly paused; a listener alone would not restart it.
  stdin.resume();
  // Wake the console so the shell prompt shows.
  session.machine.console.write('\n');
  try {
    await session.ended;
  } finally {
    session.machine.console.off('data', onConsole);
    stdin.off('data', onInput);
    process.stdout.off('resize', onResize);
    if (raw) stdin.setRawMode(false);
    stdin.pause();
  }
}

export function registerRun(program: Command, output: () => Output): void {
  const command = program
    .command('run')
    .description('boot a guest and attach this terminal to its console (Ctrl-] shuts it down)')
    .option('--detach', 'leave the guest running in the background and return once it is ready')
    .option('--root', 'log in on the console as root instead of the user');
  stickOption(command);
  guestOption(command);
  acceleratorOption(command);
  loginOptions(command);
  savedStateOptions(command);
  jsonOption(command);
  command.action(async (options: RunOptions) => {
    const out = output();
    const stickRoot = resolveStickRoot(options.stick);
    const { DEMO_USER, ensureDemoUser } = await import('../login.ts');
    // In a checkout, the demo stick is made on first use, as `demo` does, and
    // unless a user or a passphrase is named, its demo user logs in with the
    // demo passphrase `demo` prints (the real login, not a bypass).
    const demoStick = isDevCheckout() && options.stick === undefined;
    let fixedLogin: typeof DEMO_USER | undefined;
    if (demoStick) {
      const [{ currentHostAdapter }, { findQemu }, { ensureStickWithPayload }] = await Promise.all([
        import('../../hostprobe/current-host.ts'),
        import('../../vmm/qemu-binary.ts'),
        import('../bootstrap.ts'),
      ]);
      findQemu(currentHostAdapter(), stickRoot);
      await ensureStickWithPayload(out, stickRoot, options.guest);
      if (options.user === undefined && !options.passphraseStdin) {
        await ensureDemoUser(out, stickRoot);
        fixedLogin = DEMO_USER;
      }
    }
    // A guest of the stick (guest create): its state must let it boot; it boots its payload with its platform.
    const { plan: guestPlan, after: afterSignIn, deferred } = await (await import('./session.ts')).launchOfGuest(stickRoot, options.guest);
    // A built stick: its launcher and payload must be what it was made with.
    const [{ checkBeforeLaunch }, { currentHostAdapter }] = await Promise.all([
      import('../../stick/stick-manifest.ts'),
      import('../../hostprobe/current-host.ts'),
    ]);
    await checkBeforeLaunch(stickRoot, guestPlan.payload ?? options.guest, currentHostAdapter().platform);
    // After login, before the session has the key: a suspended guest resumes, or the person chooses.
    const login = async () => {
      const user = await loginForLaunch(out, stickRoot, options, fixedLogin);
      try {
        // On a stick with an owner, a guest administrator boots only a guest they were granted login on.
        const [admins, { stickLayout }] = await Promise.all([import('../../guests/guest-admins.ts'), import('../../stick/layout.ts')]);
        admins.authorize(await admins.readAdmins(stickLayout(stickRoot)), user.name, { guest: options.guest, right: 'login', says: 'run' });
        afterSignIn();
        await settleSavedState(out, stickRoot, options.guest, user, options, options.accel);
      } catch (error) {
        user.diskKey.fill(0);
        throw error;
      }
      return user;
    };
    // A refusal kept until after sign-in (a stick with an owner): sign in, check the rights, then refuse.
    if (deferred) (await login()).diskKey.fill(0);
    if (options.detach) {
      if (options.root) throw new UsageError('--root is for the attached console; run --detach has none', 'launcher exec --root -- CMD runs a command as root');
      const status = await spawnDetachedSession(
        { stickRoot, guest: options.guest, accel: options.accel },
        (message) => (message.notice ? out.notice(message.message) : out.info(message.message)),
        login,
      );
      out.data(status);
      if (status.recovery) out.line(status.recovery.summary);
      out.line(
        `${status.guest} is ${status.resumed ? 'resumed and ' : ''}running in the background (session pid ${status.pid}, ${status.accelerator}); ready in ${(status.readyMs / 1000).toFixed(1)} s`,
      );
      out.line('  launcher exec -- CMD   runs a command in it;  launcher stop   shuts it down');
      return;
    }
    const { startSession, stopOnSignals } = await import('../session-runner.ts');
    const session = await startSession(out, {
      stickRoot,
      guest: options.guest,
      ...guestPlan,
      accelerator: options.accel,
      command: 'run',
      login,
      ...(options.root ? { consoleAsRoot: true } : {}),
    });
    stopOnSignals(session, out);
    if (session.recovery) out.line(session.recovery.summary);
    await attachConsole(session, out);
    if (session.removal) throw new StickRemovedError(session.removal.message, { removal: session.removal });
    const state = session.machine.state;
    if (state === 'crashed') {
      const exit = session.machine.process.exitStatus;
      throw new GuestFailedError(
        `QEMU ended unexpectedly (${exit?.signal ?? `exit ${exit?.code}`}): ${session.machine.process.stderrTail().at(-1) ?? 'no message'}`,
        { hint: `QEMU's log: ${session.machine.logs.qemu}` },
      );
    }
    out.info(session.suspended ? `${session.guest} suspended to the stick; the next launcher run resumes it` : `${session.guest} stopped`);
  });
}
