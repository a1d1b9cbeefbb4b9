// `run --detach`: the session moves to a background process of its own (the
// hidden `session` command), which reports over an IPC channel once the guest
// is ready or failed; then this process returns and the session lives on.
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { type ExitCodeName, ExitCode, GuestFailedError, PocketError } from '../errors.ts';
import type { SessionStatus } from '../session/session.ts';
import { guestLogPaths, stickLayout } from '../stick/layout.ts';

export type DaemonMessage =
  | { type: 'event'; message: string; notice?: boolean }
  | { type: 'ready'; status: SessionStatus; readyMs: number }
  | { type: 'error'; exit: string; message: string; hint?: string };

const mainScript = fileURLToPath(new URL('./main.ts', import.meta.url));

export async function spawnDetachedSession(args: { stickRoot: string; guest: string; accel: string }, onMessage: (message: Extract<DaemonMessage, { type: 'event' }>) => void): Promise<SessionStatus & { readyMs: number }> {
  const layout = stickLayout(args.stickRoot);
  await mkdir(layout.runDir, { recursive: true });
  // The session's own narration goes to its log on the stick, never the host.
  const logFd = openSync(guestLogPaths(layout, args.guest).session, 'a');
  const child = spawn(process.execPath, [...process.execArgv, mainScript, 'session', '--stick', args.stickRoot, '--guest', args.guest, '--accel', args.accel], {
    detached: true,
    stdio: ['ignore', logFd, logFd, 'ipc'],
  });
  closeSync(logFd);
  return new Promise((resolve, reject) => {
    child.on('message', (message: DaemonMessage) => {
      if (message.type === 'event') return onMessage(message);
      child.disconnect();
      child.unref();
      if (message.type === 'ready') return resolve({ ...message.status, readyMs: message.readyMs });
      const exit = (message.exit in ExitCode ? message.exit : 'internal') as ExitCodeName;
      reject(new PocketError(exit, message.message, message.hint ? { hint: message.hint } : {}));
    });
    child.on('exit', (code, signal) => {
      reject(new GuestFailedError(`the session process ended before the guest was ready (${signal ?? `exit ${code}`})`, { hint: `its log: ${guestLogPaths(layout, args.guest).session}` }));
    });
  });
}
