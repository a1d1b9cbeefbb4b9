// Runs a host tool (apt-get, apt-cache, dpkg-deb) and returns its output, or
// rejects with a message that says which command failed and what it printed.
import { spawn } from 'node:child_process';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  readonly command: string;
  readonly result: CommandResult | undefined;
  readonly notFound: boolean;

  constructor(command: string, result: CommandResult | undefined, notFound: boolean, cause?: unknown) {
    const detail = notFound ? 'not found' : lastLine(result?.stderr) ?? `exit code ${result?.code}`;
    super(`${command}: ${detail}`, cause === undefined ? undefined : { cause });
    this.name = 'CommandError';
    this.command = command;
    this.result = result;
    this.notFound = notFound;
  }
}

function lastLine(text: string | undefined): string | undefined {
  const lines = (text ?? '').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('W:'));
  return lines.at(-1);
}

/** Runs a command; with `allowFailure` a non-zero exit is returned instead of thrown. */
export function runCommand(file: string, args: string[], options: { cwd?: string; allowFailure?: boolean; env?: NodeJS.ProcessEnv } = {}): Promise<CommandResult> {
  const display = [file, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      // A fixed locale keeps apt's output parseable whatever the user's language.
      env: { ...process.env, LC_ALL: 'C', LANG: 'C', ...options.env },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', (error: NodeJS.ErrnoException) => reject(new CommandError(display, undefined, error.code === 'ENOENT', error)));
    child.on('close', (code, signal) => {
      const result = { code: code ?? (signal ? 128 : 1), stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
      if (result.code !== 0 && !options.allowFailure) reject(new CommandError(display, result, false));
      else resolve(result);
    });
  });
}
