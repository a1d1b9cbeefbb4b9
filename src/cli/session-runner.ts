// Runs a session in this process: launch, serve control requests, and stop
// the guest cleanly on SIGINT/SIGTERM/SIGHUP. Shared by `demo`, `run` and the
// detached session process, so all three behave the same.
import { PocketError } from '../errors.ts';
import { currentHostAdapter } from '../hostprobe/current-host.ts';
import { startControlServer } from '../session/control-server.ts';
import { launchSession } from '../session/launch/launch-session.ts';
import type { LaunchOptions } from '../session/launch/launch-options.ts';
import type { Session } from '../session/session.ts';
import type { Output } from './output.ts';

const TERMINATION_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Launches the session; a termination signal before the guest is ready
 * cancels the boot: QEMU is stopped, the stick lock released (nothing for the
 * next launch to recover), and the launch fails with exit 130 saying so.
 * `process.on`, not `once`: execa's signal-exit re-raises a signal that no
 * other listener is left to handle, which killed the launcher mid-boot and
 * left the lock "starting" behind.
 */
export async function startSession(output: Output, options: Omit<LaunchOptions, 'onEvent' | 'onNotice' | 'signal'>): Promise<Session> {
  const abort = new AbortController();
  let received: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (received) return;
    received = signal;
    output.info(`${signal}: cancelling the boot`);
    abort.abort(signal);
  };
  for (const signal of TERMINATION_SIGNALS) process.on(signal, onSignal);
  const cancelled = (cause?: unknown) => {
    // A login still reading stdin (a prompt, --passphrase-stdin) is abandoned: it must not keep the launcher alive.
    (process.stdin as { unref?: () => void }).unref?.();
    return new PocketError('interrupted', `${received}: the boot of ${options.guest} was cancelled; no QEMU is left running and the stick is released`, {
      ...(cause === undefined ? {} : { cause }),
      details: { signal: received },
    });
  };
  try {
    let session: Session;
    try {
      session = await launchSession({
        ...options,
        onEvent: (event) => output.info(event.message),
        onNotice: (message) => output.notice(message),
        signal: abort.signal,
      });
    } catch (error) {
      if (received && !(error instanceof PocketError && error.exit === 'stickRemoved')) throw cancelled(error);
      throw error;
    }
    // Ready, but the signal came while the last steps ran: end it now.
    if (!received) await startControlServer(session, currentHostAdapter());
    if (received) {
      await session.stop({ force: true });
      throw cancelled();
    }
    return session;
  } finally {
    for (const signal of TERMINATION_SIGNALS) process.off(signal, onSignal);
  }
}

/** Until the session ends, a termination signal shuts the guest down first. */
export function stopOnSignals(session: Session, output: Output): () => void {
  let count = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    count += 1;
    if (count === 1) {
      output.info(`${signal}: shutting the guest down (send it again to force)`);
      void session.stop();
    } else {
      void session.stop({ force: true });
      session.machine.kill();
    }
  };
  for (const signal of TERMINATION_SIGNALS) process.on(signal, onSignal);
  const off = () => {
    for (const signal of TERMINATION_SIGNALS) process.off(signal, onSignal);
  };
  void session.ended.then(off);
  return off;
}
