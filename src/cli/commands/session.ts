// The hidden `session` command: the background process behind `run --detach`.
// It owns QEMU and the control server, and reports to its parent over IPC.
import type { Command } from 'commander';
import type { UnlockedUser } from '../../auth/users.ts';
import { asPocketError, type ExitCodeName, ExitCode, PocketError, StickRemovedError } from '../../errors.ts';
import { resolveStickRoot } from '../../stick/stick-root.ts';
import type { Accelerator } from '../../vmm/machine-spec.ts';
import type { DaemonMessage, LoginReply } from '../detach.ts';
import { Output } from '../output.ts';
import { capSessionOutput } from '../session-log.ts';
import { acceleratorOption, guestOption, stickOption } from './options.ts';

function tell(message: DaemonMessage): void {
  if (process.connected) process.send?.(message);
}

/** Asks the foreground launcher, which prompted for the passphrase, for the unwrapped key. */
function loginOverIpc(): Promise<UnlockedUser> {
  return new Promise((resolve, reject) => {
    if (!process.connected) return reject(new PocketError('usage', 'the session command is started by run --detach only'));
    process.once('message', (reply: LoginReply) => {
      // The received bytes themselves (no copy): launchSession zeroes them once QEMU holds the key.
      if (reply.type === 'unlocked')
        return resolve({ ...reply.user, diskKey: Buffer.from(reply.user.diskKey.buffer, reply.user.diskKey.byteOffset, reply.user.diskKey.byteLength) });
      const exit = (reply.exit in ExitCode ? reply.exit : 'internal') as ExitCodeName;
      reject(new PocketError(exit, reply.message, { ...(reply.hint ? { hint: reply.hint } : {}), ...(reply.details ? { details: reply.details } : {}) }));
    });
    tell({ type: 'login' });
  });
}

/**
 * A guest of the stick (src/guests/): the payload it boots and its platform;
 * nothing for a plain payload. On a stick with an owner a refusal waits until
 * after sign-in (`after`, called once the user's rights are checked), so
 * nobody learns what state a guest they may not see is in.
 */
export async function launchOfGuest(
  stickRoot: string,
  guest: string,
): Promise<{ plan: import('../../guests/guest-launch.ts').GuestLaunch; after: () => void; deferred: boolean }> {
  const [{ guestLaunch }, { stickLayout }, { readAdmins }] = await Promise.all([
    import('../../guests/guest-launch.ts'),
    import('../../stick/layout.ts'),
    import('../../guests/guest-admins.ts'),
  ]);
  const layout = stickLayout(stickRoot);
  try {
    return { plan: await guestLaunch(layout, guest), after: () => {}, deferred: false };
  } catch (error) {
    if ((await readAdmins(layout)).owner === undefined) throw error;
    return {
      plan: {},
      deferred: true,
      after: () => {
        throw error;
      },
    };
  }
}

/** `--hold`: the ready gate, which tells the foreground launcher once the guest is held (then it returns). */
async function readyGate(guest: string) {
  const [{ ReadyGate }, { currentHostAdapter }] = await Promise.all([import('../../guests/ready-gate.ts'), import('../../hostprobe/current-host.ts')]);
  const gate = new ReadyGate(guest, currentHostAdapter());
  const started = performance.now();
  return {
    hold: (held: Parameters<InstanceType<typeof ReadyGate>['hold']>[0]) =>
      gate.hold(held, () => {
        tell({ type: 'held', guest, pid: process.pid, heldMs: Math.round(performance.now() - started) });
        if (process.connected) process.disconnect();
      }),
    close: (outcome: Parameters<InstanceType<typeof ReadyGate>['close']>[0]) => gate.close(outcome),
  };
}

export function registerSession(program: Command): void {
  const command = program.command('session', { hidden: true }).description('run a session in this process (used by run --detach)');
  stickOption(command);
  guestOption(command);
  acceleratorOption(command);
  command.option('--display <mode>', 'page: serve the console page');
  command.option('--hold', 'guest ready: hold the guest before its boot until guest boot asks (src/guests/ready-gate.ts)');
  command.action(async (options: { stick?: string; guest: string; accel: Accelerator | 'auto'; display?: string; hold?: boolean }) => {
    // stdout/stderr are a log on the stick: if the stick is pulled out, a
    // failed write must not crash the session before it has cleaned up.
    for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
    capSessionOutput();
    const log = new Output({ json: false });
    const out = Object.assign(Object.create(log) as Output, {
      info: (message: string) => {
        log.info(message);
        tell({ type: 'event', message });
      },
      notice: (message: string) => {
        log.notice(message);
        tell({ type: 'event', message, notice: true });
      },
    });
    let session;
    const { startSession, stopOnSignals } = await import('../session-runner.ts');
    const stickRoot = resolveStickRoot(options.stick);
    // The page's address with its token goes to the foreground launcher only, never to the log on the stick.
    let pageFirstAddress: string | undefined;
    const served =
      options.display === 'page'
        ? await (await import('../console-page.ts')).servePage(log, { stickRoot, signInOnPage: false, tell: (address) => (pageFirstAddress = address) })
        : undefined;
    const gate = options.hold ? await readyGate(options.guest) : undefined;
    try {
      const stickRoot = resolveStickRoot(options.stick);
      const guest = await launchOfGuest(stickRoot, options.guest);
      session = await startSession(out, {
        stickRoot,
        guest: options.guest,
        ...guest.plan,
        accelerator: options.accel,
        command: 'run --detach',
        login: async () => {
          const user = await loginOverIpc();
          try {
            guest.after();
          } catch (error) {
            user.diskKey.fill(0);
            throw error;
          }
          return user;
        },
        ...(served ? { display: { kind: 'page' as const }, page: { address: served.page.address } } : {}),
        ...(gate ? { hold: gate.hold } : {}),
      });
      if (gate) (await import('../../primitives/failpoint.ts')).failpoint('boot:running');
      await gate?.close({ ok: true, result: session.status() });
    } catch (error) {
      await gate?.close({ ok: false, error });
      const failure = asPocketError(error);
      await served?.failed(failure.message);
      tell({ type: 'error', exit: failure.exit, message: failure.message, ...(failure.hint ? { hint: failure.hint } : {}), details: failure.details });
      throw failure;
    }
    stopOnSignals(session, log);
    served?.attach(session);
    tell({ type: 'ready', status: session.status(), readyMs: session.timings.readyMs, ...(pageFirstAddress ? { pageFirstAddress } : {}) });
    if (process.connected) process.disconnect();
    const result = await session.ended;
    await served?.ended(session);
    // The stick was pulled out: said on stderr (the log on the stick, if it
    // still takes it), and the exit code says so; `status` then finds no session.
    if (session.removal) throw new StickRemovedError(session.removal.message, { removal: session.removal });
    log.info(`session ended (${result ? `shutdown by ${result.step}` : `guest ${session.machine.state}`})`);
  });
}
