// Runs one external tool of the image build (mmdebstrap, tar, cpio, mke2fs, a
// recipe's hook), streaming its lines to the progress listener and turning a
// failure into one PayloadBuildError with the tool's last words.
import { spawn } from 'node:child_process';
import { PayloadBuildError } from '../payload/errors.ts';

export async function runTool(
  command: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; onLine?: (line: string) => void; stdinFrom?: NodeJS.ReadableStream } = {},
): Promise<void> {
  const tail: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: [options.stdinFrom ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    if (options.stdinFrom && child.stdin) options.stdinFrom.pipe(child.stdin);
    const take = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        tail.push(line);
        if (tail.length > 20) tail.shift();
        options.onLine?.(line);
      }
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    child.on('error', (error) =>
      reject(
        new PayloadBuildError(`cannot run ${command}: ${error.message}`, { hint: `install ${command} (docs/images.md, "Building an image")`, cause: error }),
      ),
    );
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new PayloadBuildError(`${command} failed (${signal ?? `exit ${code}`}): ${tail.slice(-5).join(' | ')}`, { details: { command, args } }));
    });
  });
}
