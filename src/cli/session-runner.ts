// Runs a session in this process: launch, serve control requests, and stop
// the guest cleanly on SIGINT/SIGTERM/SIGHUP. Shared by `demo`, `run` and the
// detached session process, so all three behave the same.
import { currentHostAdapter } from '../hostprobe/current-host.ts';
import { startControlServer } from '../session/control-server.ts';
import { launchSession, type LaunchOptions, type Session } from '../session/session.ts';
import type { Output } from './output.ts';

export async function startSession(output: Output, options: Omit<LaunchOptions, 'onEvent' | 'onNotice' | 'signal'>): Promise<Session> {
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const signal of signals) process.once(signal, onSignal);
  try {
    const session = await launchSession({
      ...options,
      onEvent: (event) => output.info(event.message),
      onNotice: (message) => output.notice(message),
      signal: abort.signal,
    });
    await startControlServer(session, currentHostAdapter());
    return session;
  } finally {
    for (const signal of signals) process.off(signal, onSignal);
  }
}

/** Until the session ends, a termination signal shuts the guest down first. */
export function stopOnSignals(session: Session, output: Output): () => void {
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
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
  for (const signal of signals) process.on(signal, onSignal);
  const off = () => {
    for (const signal of signals) process.off(signal, onSignal);
  };
  void session.ended.then(off);
  return off;
}
