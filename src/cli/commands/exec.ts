// `launcher exec -- CMD [ARG…]`: run a command in the running guest through
// the guest agent, print its output, exit with its exit code.
import type { Command } from 'commander';
import { UsageError } from '../../errors.ts';
import { sendControl } from '../../session/control-client.ts';
import { stickLayout } from '../../stick/layout.ts';
import { resolveStickRoot } from '../../stick/stick-root.ts';
import type { Output } from '../output.ts';
import { guestOption, jsonOption, stickOption } from './options.ts';

export function registerExec(program: Command, output: () => Output): void {
  const command = program
    .command('exec')
    .description("run a command in the running guest; exits with the command's exit code")
    .argument('<command...>', 'the command and its arguments (put -- before them)')
    .option('--timeout <seconds>', 'give up after this long', '300')
    .option('--root', "run as root instead of the session's user");
  stickOption(command);
  guestOption(command);
  jsonOption(command);
  command.action(async (argv: string[], options: { stick?: string; timeout: string; json?: boolean; root?: boolean }) => {
    const out = output();
    const [path, ...args] = argv;
    if (!path) throw new UsageError('exec needs a command', 'launcher exec -- uname -r');
    const timeoutSeconds = Number(options.timeout);
    if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new UsageError(`--timeout ${options.timeout} is not a number of seconds`);
    const result = await sendControl(stickLayout(resolveStickRoot(options.stick)), 'exec', { path, args, timeoutMs: timeoutSeconds * 1000, ...(options.root ? { root: true } : {}) }, { timeoutMs: timeoutSeconds * 1000 + 30_000 });
    const stdout = Buffer.from(result.stdout, 'base64');
    const stderr = Buffer.from(result.stderr, 'base64');
    if (out.json) {
      out.data({ exitCode: result.exitCode, signal: result.signal, stdout: stdout.toString('utf8'), stderr: stderr.toString('utf8') });
    } else {
      process.stdout.write(stdout);
      process.stderr.write(stderr);
    }
    // A command killed by a signal exits 128+N, as a shell reports it.
    process.exitCode = result.signal ? 128 + result.signal : result.exitCode;
  });
}
