// `launcher run`: boot a guest and attach this terminal to its console
// (Ctrl-] shuts the guest down), or with --detach leave it running in the
// background and return once it is ready.
import { type Command, Option } from 'commander';
import { DisplayError, GuestFailedError, StickRemovedError, UsageError } from '../../errors.ts';
import { resolveStickRoot } from '../../stick/stick-root.ts';
import type { Accelerator } from '../../vmm/machine-spec.ts';
import { spawnDetachedSession } from '../detach.ts';
import type { Output } from '../output.ts';
import { type LoginFlags, loginForLaunch, loginOptions } from '../login.ts';
import { type SavedStateFlags, savedStateOptions, settleSavedState } from '../saved-state-choice.ts';
import { acceleratorOption, guestOption, jsonOption, stickOption } from './options.ts';
import { isDevCheckout } from '../../stick/stick-root.ts';
import type { Session } from '../../session/session.ts';
import type { UnlockedUser } from '../../auth/users.ts';

/** Ctrl-]: the telnet/ssh-style escape; the guest never sees it. */
export const DETACH_KEY = 0x1d;

interface RunOptions extends LoginFlags, SavedStateFlags {
  stick?: string;
  guest: string;
  accel: Accelerator | 'auto';
  detach?: boolean;
  root?: boolean;
  json?: boolean;
  display?: DisplayMode;
}

type DisplayMode = 'page' | 'window' | 'none';

/**
 * Without --display: the page when the launcher has no terminal at all (a
 * double-click) and the passphrase does not come from stdin; otherwise the
 * terminal's console, as before (docs/console-page.md, "Which display").
 */
export function defaultDisplay(options: { detach?: boolean; passphraseStdin?: boolean }, terminal: { stdin: boolean; stdout: boolean }): DisplayMode {
  if (options.detach || options.passphraseStdin || terminal.stdin || terminal.stdout) return 'none';
  return 'page';
}

/** `--display window`: QEMU's own window, if this QEMU build has one. */
async function windowBackend(stickRoot: string): Promise<string> {
  const [{ currentHostAdapter }, { findQemu }, { qemuDisplays }] = await Promise.all([
    import('../../hostprobe/current-host.ts'),
    import('../../vmm/qemu-binary.ts'),
    import('../../vmm/qemu-displays.ts'),
  ]);
  const host = currentHostAdapter();
  const available = await qemuDisplays(findQemu(host, stickRoot).system);
  const backend = host.windowDisplays.find((name) => available.includes(name));
  if (!backend)
    throw new DisplayError(
      `this QEMU has no window of its own (it offers: ${available.join(', ') || 'nothing'})`,
      'use --display page (the console page in a browser); on Debian the window comes with qemu-system-gui',
    );
  return backend;
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
    .option('--root', 'log in on the console as root instead of the user')
    .addOption(
      new Option(
        '--display <mode>',
        "page: the console page in the browser; window: QEMU's own window; none: this terminal (default: page without a terminal, else none)",
      ).choices(['page', 'window', 'none']),
    );
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
    const display = options.display ?? defaultDisplay(options, { stdin: process.stdin.isTTY === true, stdout: process.stdout.isTTY === true });
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
      if (options.user === undefined && !options.passphraseStdin && display !== 'page') {
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
      if (display === 'window')
        throw new UsageError('--display window needs the launcher in the foreground', 'run --detach --display page serves the console page instead');
      const status = await spawnDetachedSession(
        { stickRoot, guest: options.guest, accel: options.accel, ...(display === 'page' ? { display: 'page' as const } : {}) },
        (message) => (message.notice ? out.notice(message.message) : out.info(message.message)),
        login,
      );
      out.data(status);
      if (status.recovery) out.line(status.recovery.summary);
      out.line(
        `${status.guest} is ${status.resumed ? 'resumed and ' : ''}running in the background (session pid ${status.pid}, ${status.accelerator}); ready in ${(status.readyMs / 1000).toFixed(1)} s`,
      );
      if (status.pageFirstAddress) out.line(`  the console page: ${status.pageFirstAddress}`);
      out.line('  launcher exec -- CMD   runs a command in it;  launcher stop   shuts it down');
      return;
    }
    const displayRequest =
      display === 'page' ? { kind: 'page' as const } : display === 'window' ? { kind: 'window' as const, backend: await windowBackend(stickRoot) } : undefined;
    if (display === 'page')
      return runWithPage(out, {
        stickRoot,
        guest: options.guest,
        accel: options.accel,
        root: options.root === true,
        login,
        settle: (user) => settleSavedState(out, stickRoot, options.guest, user, options, options.accel),
        signInOnPage: !options.passphraseStdin,
      });
    const { startSession, stopOnSignals } = await import('../session-runner.ts');
    const session = await startSession(out, {
      ...(displayRequest ? { display: displayRequest } : {}),
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
    endedSession(session, out);
  });
}

/** The command's end once the session is over: the stick pulled out and a crash are errors. */
function endedSession(session: Session, out: Output): void {
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
}

/** `run --display page` (and `demo` of a graphical guest): the console page signs the person in (unless the passphrase came on stdin) and shows the guest. */
export async function runWithPage(
  out: Output,
  args: {
    stickRoot: string;
    guest: string;
    accel: Accelerator | 'auto';
    root: boolean;
    login: () => Promise<UnlockedUser>;
    settle: (user: UnlockedUser) => Promise<void>;
    signInOnPage: boolean;
  },
): Promise<void> {
  const [{ servePage }, { startSession, stopOnSignals }] = await Promise.all([import('../console-page.ts'), import('../session-runner.ts')]);
  const served = await servePage(out, { stickRoot: args.stickRoot, signInOnPage: args.signInOnPage });
  const narrating = Object.assign(Object.create(out) as Output, {
    info: (message: string) => {
      out.info(message);
      served.narrate(message);
    },
  });
  let session: Session;
  try {
    session = await startSession(narrating, {
      stickRoot: args.stickRoot,
      guest: args.guest,
      accelerator: args.accel,
      command: 'run',
      display: { kind: 'page', onScreen: served.screen },
      page: { address: served.page.address },
      login: args.signInOnPage
        ? async () => {
            const user = await served.signedIn;
            try {
              await args.settle(user);
            } catch (error) {
              user.diskKey.fill(0);
              throw error;
            }
            return user;
          }
        : args.login,
      ...(args.root ? { consoleAsRoot: true } : {}),
    });
  } catch (error) {
    await served.failed(error instanceof Error ? error.message : String(error));
    throw error;
  }
  stopOnSignals(session, out);
  if (session.recovery) out.line(session.recovery.summary);
  served.attach(session);
  out.info(`${session.guest} is running; its screen is on the console page (${served.page.address})`);
  await session.ended;
  await served.ended(session);
  endedSession(session, out);
}
