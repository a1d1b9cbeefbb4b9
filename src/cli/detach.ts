// `run --detach`: the session moves to a background process of its own (the
// hidden `session` command), which reports over an IPC channel once the guest
// is ready or failed; then this process returns and the session lives on.
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { asPocketError, type ExitCodeName, ExitCode, GuestFailedError, PocketError, StickLockedError } from '../errors.ts';
import { selfCommand } from '../runtime/self.ts';
import type { UnlockedUser } from '../auth/users.ts';
import type { SessionStatus } from '../session/session.ts';
import { LOG_LIMITS, prepareLogFile } from '../primitives/capped-log.ts';
import { guestLogPaths } from '../stick/layout.ts';
import { describeHolder, isStale, readLock } from '../stick/lock.ts';
import { guestSessionLayout } from '../stick/session-locks.ts';
import { assertWritable, openStick } from '../stick/stick-root.ts';

export type DaemonMessage =
  | { type: 'event'; message: string; notice?: boolean }
  | { type: 'login' }
  | { type: 'ready'; status: SessionStatus; readyMs: number; pageFirstAddress?: string }
  /** `guest ready`: the platform is up and the guest held before its boot (src/guests/ready-gate.ts). */
  | { type: 'held'; guest: string; pid: number; heldMs: number }
  | { type: 'error'; exit: string; message: string; hint?: string; details?: Record<string, unknown> };

/** The parent's answer to `login`: the unwrapped key, over the IPC channel only. */
export type LoginReply =
  | { type: 'unlocked'; user: Omit<UnlockedUser, 'diskKey'> & { diskKey: Uint8Array } }
  | { type: 'login-failed'; exit: string; message: string; hint?: string; details?: Record<string, unknown> };

export async function spawnDetachedSession(
  args: { stickRoot: string; guest: string; accel: string; display?: 'page'; hold?: boolean },
  onMessage: (message: Extract<DaemonMessage, { type: 'event' }>) => void,
  login?: () => Promise<UnlockedUser>,
): Promise<SessionStatus & { readyMs: number; pageFirstAddress?: string }> {
  // Nothing is written until the folder is a stick and no session holds it:
  // a mistyped --stick must not get a run/session.log, nor a busy stick's
  // session log this launch's refusal (the refusal goes to the terminal only).
  const layout = guestSessionLayout(await openStick(args.stickRoot), args.guest);
  const holder = await readLock(layout);
  if (holder && !isStale(holder)) throw new StickLockedError(describeHolder(holder), layout.lockFile);
  await assertWritable(layout.root);
  await mkdir(layout.runDir, { recursive: true });
  // The session's own narration goes to its log on the stick, never the host;
  // past half its cap the previous one is moved aside (src/primitives/capped-log.ts).
  const sessionLog = guestLogPaths(layout, args.guest).session;
  prepareLogFile(sessionLog, LOG_LIMITS.session);
  const logFd = openSync(sessionLog, 'a');
  const self = selfCommand();
  const child = spawn(
    self.command,
    [
      ...self.args,
      'session',
      '--stick',
      args.stickRoot,
      '--guest',
      args.guest,
      '--accel',
      args.accel,
      ...(args.display ? ['--display', args.display] : []),
      ...(args.hold ? ['--hold'] : []),
    ],
    {
      detached: true,
      stdio: ['ignore', logFd, logFd, 'ipc'],
      // Structured clone, not JSON: the disk key crosses as bytes, never as a base64 string that could not be cleared.
      serialization: 'advanced',
    },
  );
  closeSync(logFd);
  let loginFailure: PocketError | undefined;
  // Ctrl-C (or SIGTERM/SIGHUP) while this command waits for readiness cancels
  // the boot: the session is told to stop (it kills QEMU and releases the
  // stick) and its answer, exit 130 saying so, becomes this command's.
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const cancel = (signal: NodeJS.Signals) => {
    onMessage({ type: 'event', message: `${signal}: cancelling the boot` });
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  for (const signal of signals) process.on(signal, cancel);
  const settled = <T>(promise: Promise<T>) =>
    promise.finally(() => {
      for (const signal of signals) process.off(signal, cancel);
    });
  return settled(
    new Promise((resolve, reject) => {
      child.on('message', (message: DaemonMessage) => {
        if (message.type === 'event') return onMessage(message);
        // The session has checked the stick and payload and holds the lock: it
        // asks for the user's key, which this (foreground) process unwraps.
        if (message.type === 'login') {
          const answer = (reply: LoginReply) => child.send(reply);
          if (!login) return answer({ type: 'login-failed', exit: 'internal', message: 'no login was offered to the session' });
          login().then(
            (user) => {
              answer({ type: 'unlocked', user: { ...user, diskKey: user.diskKey } });
              user.diskKey.fill(0);
            },
            (error: unknown) => {
              const failure = asPocketError(error);
              loginFailure = failure;
              answer({
                type: 'login-failed',
                exit: failure.exit,
                message: failure.message,
                ...(failure.hint ? { hint: failure.hint } : {}),
                details: failure.details,
              });
            },
          );
          return;
        }
        child.disconnect();
        child.unref();
        if (message.type === 'held') return resolve(message as unknown as SessionStatus & { readyMs: number });
        if (message.type === 'ready')
          return resolve({ ...message.status, readyMs: message.readyMs, ...(message.pageFirstAddress ? { pageFirstAddress: message.pageFirstAddress } : {}) });
        const exit = (message.exit in ExitCode ? message.exit : 'internal') as ExitCodeName;
        reject(
          loginFailure ??
            new PocketError(exit, message.message, {
              ...(message.hint ? { hint: message.hint } : {}),
              ...(message.details ? { details: message.details } : {}),
            }),
        );
      });
      child.on('exit', (code, signal) => {
        reject(
          new GuestFailedError(`the session process ended before the guest was ready (${signal ?? `exit ${code}`})`, {
            hint: `its log: ${guestLogPaths(layout, args.guest).session}`,
          }),
        );
      });
    }),
  );
}
