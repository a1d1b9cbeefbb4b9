// `launcher eject [--suspend]`: end the session so the stick can be pulled.
// Without --suspend the guest shuts down cleanly (the `stop` ladder); with it,
// its whole state is saved to the stick, encrypted, to be resumed by the next
// `launcher run` on any PC. Either way the launcher waits for the session to
// let go of the stick, flushes what it wrote, and says it is safe to remove.
import type { Command } from 'commander';
import { ExitCode, NoSessionError } from '../../errors.ts';
import { sendControl } from '../../session/control-client.ts';
import type { SuspendResult } from '../../session/suspend.ts';
import { flushStick } from '../../stick/flush.ts';
import { stickLayout } from '../../stick/layout.ts';
import type { SessionLock } from '../../stick/session-locks.ts';
import { resolveStickRoot } from '../../stick/stick-root.ts';
import type { ShutdownResult } from '../../vmm/shutdown-ladder.ts';
import type { Output } from '../output.ts';
import { jsonOption, runningGuestOption, stickOption } from './options.ts';
import { findSessions, waitForExit } from '../running-guest.ts';
import { requireRightOnEach, signInOptions } from '../session-rights.ts';

/** Saving 4 GiB to a slow stick takes minutes; the session answers when it is done. */
const SUSPEND_TIMEOUT_MS = 20 * 60_000;
const SESSION_EXIT_TIMEOUT_MS = 15_000;

const mib = (bytes: number) => bytes / 1048576;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export function describeSuspend(result: SuspendResult, stickRoot: string): string[] {
  const file = result.file.startsWith(stickRoot) ? result.file.slice(stickRoot.length).replace(/^[\\/]/, '') : result.file;
  const rate = result.saveMs > 0 ? mib(result.bytes) / (result.saveMs / 1000) : 0;
  return [
    `${result.guest} suspended to ${file}: ${mib(result.bytes).toFixed(0)} MiB, encrypted (guest memory ${result.memoryMiB} MiB)`,
    `  saved in ${seconds(result.saveMs)} (${rate.toFixed(0)} MiB/s), guest sync ${seconds(result.syncMs)}, QEMU quit ${seconds(result.quitMs)}; ${seconds(result.totalMs)} in all`,
    `  the next launcher run as ${result.user}, on this PC or another, resumes it`,
  ];
}

export function registerEject(program: Command, output: () => Output): void {
  const command = program
    .command('eject')
    .description('end the session so the stick can be removed: shut the guest down, or save it to the stick with --suspend')
    .option('--suspend', "save the running guest's whole state (encrypted) to the stick instead; the next launcher run, on any PC, resumes it");
  stickOption(command);
  runningGuestOption(command);
  jsonOption(command);
  signInOptions(command);
  command.action(async (options: { stick?: string; suspend?: boolean; guest?: string; user?: string; passphraseStdin?: boolean }) => {
    const out = output();
    const stick = stickLayout(resolveStickRoot(options.stick));
    const started = performance.now();
    // With --guest that guest's session; without it every guest running from the stick.
    const { live } = await findSessions(stick, options.guest, 'eject');
    if (live.length === 0) {
      // Nothing to suspend is an error; nothing to shut down is already the goal.
      if (options.suspend) throw new NoSessionError(stick.root);
      const flush = await flushStick(stick);
      out.data({ action: 'none', safeToRemove: true, flushMs: flush.ms });
      out.line('nothing is running from this stick: it is safe to remove');
      return;
    }
    // On a stick with an owner: signed in once, with the right to suspend (--suspend) or manage every guest it ends.
    const right = options.suspend ? 'suspend' : 'manage';
    await requireRightOnEach(
      out,
      stick,
      options,
      live.map((session) => ({ guest: session.holder.guest, right, says: 'eject' })),
    );
    // Several end side by side: each session saves or shuts down its own guest.
    const ended = await Promise.all(live.map((session) => endSession(session, options.suspend === true, out)));
    const flush = await flushStick(stick);
    const totalMs = Math.round(performance.now() - started);
    const exited = ended.every((one) => one.sessionExited);
    const [only] = ended;
    if (ended.length === 1 && only) out.data({ ...only.data, sessionExited: exited, flushMs: flush.ms, totalMs, safeToRemove: exited });
    else out.data({ action: options.suspend ? 'suspend' : 'shutdown', guests: ended.map((one) => one.data), flushMs: flush.ms, totalMs, safeToRemove: exited });
    for (const one of ended) {
      if (one.suspended) for (const line of describeSuspend(one.suspended, stick.root)) out.line(line);
      else if (one.shutdown) out.line(`${one.guest} shut down in ${seconds(one.shutdown.ms)} (ended by: ${one.shutdown.step})`);
    }
    if (!exited) {
      for (const one of ended)
        if (!one.sessionExited) out.notice(`the session process of ${one.guest} (pid ${one.pid}) has not exited yet; wait for it before removing the stick`);
      process.exitCode = ExitCode.timeout;
      return;
    }
    out.line(`safe to remove the stick (files flushed in ${seconds(flush.ms)}; ${seconds(totalMs)} in all)`);
  });
}

interface Ended {
  guest: string;
  pid: number;
  suspended?: SuspendResult;
  shutdown?: ShutdownResult;
  sessionExited: boolean;
  /** This guest's part of the JSON document. */
  data: Record<string, unknown>;
}

/** Suspends or shuts down one session's guest and waits for its session to let go of the stick. */
async function endSession(session: SessionLock, suspend: boolean, out: Output): Promise<Ended> {
  const { holder, layout } = session;
  const guest = holder.guest ?? 'the guest';
  let suspended: SuspendResult | undefined;
  let shutdown: ShutdownResult | undefined;
  if (suspend) {
    out.info(`suspending ${guest}: saving its state to the stick`);
    suspended = await sendControl(layout, 'suspend', {}, { timeoutMs: SUSPEND_TIMEOUT_MS });
  } else {
    out.info(`shutting ${guest} down`);
    shutdown = await sendControl(layout, 'stop', { force: false });
  }
  // The session process lets go of the stick last (its log): wait for it.
  const sessionExited = await waitForExit(holder.pid, SESSION_EXIT_TIMEOUT_MS);
  return {
    guest,
    pid: holder.pid,
    sessionExited,
    ...(suspended ? { suspended } : {}),
    ...(shutdown ? { shutdown } : {}),
    data: { guest, action: suspended ? 'suspend' : 'shutdown', ...(suspended ? { suspend: suspended } : { shutdown }), sessionExited },
  };
}
