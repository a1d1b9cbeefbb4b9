// Runs the launcher under a pseudo-terminal (util-linux `script`), answering
// what it prints as a person at the keyboard would: each step waits for its
// text, then types its keys. Only what a real terminal gives is exercised
// (raw-mode prompts, Ctrl-C as a key); no native addon is needed.
import { spawn } from 'node:child_process';
import { launcherPath } from '../integration/harness.ts';

export interface PtyStep {
  /** Wait until the output (since the previous step) matches this. */
  expect: RegExp;
  /** Then type this (e.g. 'secret\r', or '\x03' for Ctrl-C). */
  send: string;
}

export interface PtyResult {
  exitCode: number;
  output: string;
}

const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

export function launcherInPty(args: string[], steps: PtyStep[], timeoutMs = 120_000): Promise<PtyResult> {
  const commandLine = [launcherPath, ...args].map(quote).join(' ');
  const child = spawn('script', ['-qec', commandLine, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', TERM: 'xterm' } });
  let output = '';
  let seen = 0;
  const pending = [...steps];
  const advance = () => {
    const step = pending[0];
    if (!step || !step.expect.test(output.slice(seen))) return;
    pending.shift();
    // A moment for the prompt to switch the terminal to raw mode before the
    // keys arrive; the next step only looks at what comes after them.
    setTimeout(() => {
      child.stdin.write(step.send);
      seen = output.length;
    }, 300);
  };
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
    advance();
  });
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`launcher ${args.join(' ')} under a pty did not end in ${timeoutMs} ms; ${pending.length} steps left; output:\n${output}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      // script keeps its stdin open: closing ours lets it go.
      child.stdin.destroy();
      resolve({ exitCode: code ?? -1, output });
    });
  });
}

/** How many times `pattern` occurs in `text`. */
export const count = (text: string, pattern: RegExp) => [...text.matchAll(new RegExp(pattern.source, 'g'))].length;
