// `launcher exec -- CMD [ARG…]`: run a command in the running guest as a
// remote command: stdin forwarded (closed at EOF), stdout and stderr streamed
// as they come, the exit status passed back (128+N for a signal N). Ctrl-C
// (and SIGTERM/SIGHUP) and --timeout end the command in the guest: its whole
// process group gets the signal, then SIGKILL if it lingers.
import { constants } from 'node:os';
import type { Command } from 'commander';
import { TimeoutError, UsageError } from '../../errors.ts';
import { openRemoteExec, type ExecOutcome } from '../../session/exec-client.ts';
import { stickLayout } from '../../stick/layout.ts';
import { resolveStickRoot } from '../../stick/stick-root.ts';
import type { Output } from '../output.ts';
import { findOneSession } from '../running-guest.ts';
import { requireRight, signInOptions } from '../session-rights.ts';
import { jsonOption, runningGuestOption, stickOption } from './options.ts';

/** After the first signal, how long the command has before SIGKILL. */
const GRACE_MS = 3_000;

export function registerExec(program: Command, output: () => Output): void {
  const command = program
    .command('exec')
    .description("run a command in the running guest; exits with the command's exit code")
    .argument('<command...>', 'the command and its arguments (put -- before them)')
    .option('--timeout <seconds>', 'end the command after this long', '300')
    .option('--root', "run as root instead of the session's user");
  stickOption(command);
  runningGuestOption(command);
  jsonOption(command);
  signInOptions(command);
  command.action(
    async (
      argv: string[],
      options: { stick?: string; guest?: string; timeout: string; json?: boolean; root?: boolean; user?: string; passphraseStdin?: boolean },
    ) => {
      const out = output();
      const [path, ...args] = argv;
      if (!path) throw new UsageError('exec needs a command', 'launcher exec -- uname -r');
      const timeoutSeconds = Number(options.timeout);
      if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new UsageError(`--timeout ${options.timeout} is not a number of seconds`);
      // The guest's own session: another name than the ones running is refused, not ignored; several need --guest.
      const stick = stickLayout(resolveStickRoot(options.stick));
      const { holder, layout } = await findOneSession(stick, options.guest, 'exec');
      // On a stick with an owner: signed in, with the login right on the guest (src/cli/session-rights.ts).
      await requireRight(out, stick, options, { guest: holder.guest, right: 'login', says: 'exec', sessionUser: holder.user });

      // --json collects the output for one document at the end; otherwise it streams.
      const collected = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
      const sink = (stream: NodeJS.WriteStream, into: Buffer[]) => {
        let waiting: (() => void) | undefined;
        return (data: Buffer, resume: () => void) => {
          if (out.json) return into.push(data) > 0;
          // A reader that went away (`| head -1`): the rest is dropped and the
          // command runs to its end, as every command's output does (output.ts).
          if (stream.destroyed || stream.writableEnded) return true;
          if (stream.write(data)) return true;
          if (waiting) return false;
          // 'drain' never comes once the reader has closed the pipe; 'close' does.
          waiting = () => {
            stream.off('drain', waiting!);
            stream.off('close', waiting!);
            waiting = undefined;
            resume();
          };
          stream.once('drain', waiting);
          stream.once('close', waiting);
          return false;
        };
      };
      const remote = await openRemoteExec(
        layout,
        { path, args, ...(options.root ? { root: true } : {}) },
        { stdout: sink(process.stdout, collected.stdout), stderr: sink(process.stderr, collected.stderr) },
      );

      const stdin = process.stdin;
      const onInput = (chunk: Buffer) => {
        if (!remote.write(chunk)) stdin.pause();
      };
      remote.onDrain(() => stdin.resume());
      stdin.on('data', onInput);
      stdin.once('end', () => remote.end());
      stdin.on('error', () => remote.end());
      // --passphrase-stdin read stdin to its end already: the command gets an empty stdin.
      if (stdin.readableEnded) remote.end();

      // Ending the command: its signal first, SIGKILL if it is still there after the grace.
      let ending: NodeJS.Signals | undefined;
      let killTimer: NodeJS.Timeout | undefined;
      const endCommand = (signal: NodeJS.Signals) => {
        remote.signal(constants.signals[signal]);
        if (ending) return;
        ending = signal;
        killTimer = setTimeout(() => remote.signal(constants.signals.SIGKILL), GRACE_MS);
      };
      const onSignal = (signal: NodeJS.Signals) => endCommand(ending ? 'SIGKILL' : signal);
      const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
      for (const signal of signals) process.on(signal, onSignal);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        endCommand('SIGTERM');
      }, timeoutSeconds * 1000);

      let outcome: ExecOutcome;
      try {
        outcome = await remote.outcome;
      } finally {
        clearTimeout(timer);
        clearTimeout(killTimer);
        for (const signal of signals) process.off(signal, onSignal);
        stdin.off('data', onInput);
        stdin.pause();
      }
      if (timedOut)
        throw new TimeoutError(`\`${[path, ...args].join(' ')}\``, timeoutSeconds * 1000, 'it was ended in the guest; a longer --timeout gives it more time');
      if (outcome.kind === 'failed') {
        if (out.json) out.data({ exitCode: outcome.exitCode, signal: null, stdout: '', stderr: `${outcome.message}\n`, error: outcome.message });
        else process.stderr.write(`pocketvm: ${outcome.message}\n`);
        process.exitCode = outcome.exitCode;
        return;
      }
      if (out.json) {
        out.data({
          exitCode: outcome.signal ? 128 + outcome.signal : outcome.exitCode,
          signal: outcome.signal,
          stdout: Buffer.concat(collected.stdout).toString('utf8'),
          stderr: Buffer.concat(collected.stderr).toString('utf8'),
        });
      }
      // A command killed by a signal exits 128+N, as a shell reports it.
      process.exitCode = outcome.signal ? 128 + outcome.signal : outcome.exitCode;
    },
  );
}
