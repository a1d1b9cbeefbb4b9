// qemu-img, found as the launcher finds it (the stick's bundle, then beside
// POCKETVM_QEMU, then PATH), and run with its output collected; `convert`
// reports its progress (-p) as it goes.
import { spawn } from 'node:child_process';
import { currentPlatform } from '../platform/current.ts';
import { findQemuImg } from '../vmm/qemu-binary.ts';

export interface QemuImgResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export function runQemuImg(stickRoot: string, args: string[], onStdout?: (text: string) => void): Promise<QemuImgResult> {
  const binary = findQemuImg(currentPlatform(), stickRoot);
  return new Promise((resolve, reject) => {
    const child = spawn(binary.system, [...(binary.prefixArgs ?? []), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...binary.env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      if (onStdout) onStdout(text);
      else stdout += text;
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ exitCode: code ?? 128 + (signal ? 15 : 0), stdout, stderr }));
  });
}

/** The last line qemu-img printed on stderr: its reason, for a one-line error. */
export function lastWords(result: QemuImgResult): string {
  return (
    result.stderr
      .trim()
      .split('\n')
      .at(-1)
      ?.replace(/^qemu-img: /, '') ?? `qemu-img exited ${result.exitCode}`
  );
}

/** Percentages from `qemu-img convert -p`'s output: "    (12.34/100%)\r". */
export function progressPercents(text: string): number[] {
  return [...text.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)].map((m) => Number(m[1]));
}
