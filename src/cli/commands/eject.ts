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
import { isStale, processAlive, readLock } from '../../stick/lock.ts';
import { resolveStickRoot } from '../../stick/stick-root.ts';
import type { ShutdownResult } from '../../vmm/shutdown-ladder.ts';
import type { Output } from '../output.ts';
import { jsonOption, runningGuestOption, stickOption } from './options.ts';
import { checkRunningGuest } from '../running-guest.ts';
import { requireRight, signInOptions } from '../session-rights.ts';

/** Saving 4 GiB to a slow stick takes minutes; the session answers when it is done. */
const SUSPEND_TIMEOUT_MS = 20 * 60_000;
const SESSION_EXIT_TIMEOUT_MS = 15_000;

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (processAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

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
    const layout = stickLayout(resolveStickRoot(options.stick));
    const started = performance.now();
    const holder = await readLock(layout);
    if (!holder || isStale(holder)) {
      // Nothing to suspend is an error; nothing to shut down is already the goal.
      if (options.suspend) throw new NoSessionError(layout.root);
      const flush = await flushStick(layout);
      out.data({ action: 'none', safeToRemove: true, flushMs: flush.ms });
      out.line('nothing is running from this stick: it is safe to remove');
      return;
    }
    checkRunningGuest(holder, options.guest, layout.root, 'eject');
    // On a stick with an owner: signed in, with the right to suspend (--suspend) or manage the guest that runs.
    await requireRight(out, layout, options, { guest: holder.guest, right: options.suspend ? 'suspend' : 'manage', says: 'eject' });
    let suspended: SuspendResult | undefined;
    let shutdown: ShutdownResult | undefined;
    if (options.suspend) {
      out.info(`suspending ${holder.guest ?? 'the guest'}: saving its state to the stick`);
      suspended = await sendControl(layout, 'suspend', {}, { timeoutMs: SUSPEND_TIMEOUT_MS });
    } else {
      out.info(`shutting ${holder.guest ?? 'the guest'} down`);
      shutdown = await sendControl(layout, 'stop', { force: false });
    }
    // The session process lets go of the stick last (its log): wait for it.
    const exited = await waitForExit(holder.pid, SESSION_EXIT_TIMEOUT_MS);
    const flush = await flushStick(layout);
    const totalMs = Math.round(performance.now() - started);
    out.data({
      action: suspended ? 'suspend' : 'shutdown',
      ...(suspended ? { suspend: suspended } : { shutdown }),
      sessionExited: exited,
      flushMs: flush.ms,
      totalMs,
      safeToRemove: exited,
    });
    if (suspended) for (const line of describeSuspend(suspended, layout.root)) out.line(line);
    else if (shutdown) out.line(`${holder.guest ?? 'the guest'} shut down in ${seconds(shutdown.ms)} (ended by: ${shutdown.step})`);
    if (!exited) {
      out.notice(`the session process (pid ${holder.pid}) has not exited yet; wait for it before removing the stick`);
      process.exitCode = ExitCode.timeout;
      return;
    }
    out.line(`safe to remove the stick (files flushed in ${seconds(flush.ms)}; ${seconds(totalMs)} in all)`);
  });
}
