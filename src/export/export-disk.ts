// The system disk written for a target: the read-only base alone (a
// payload's raw base or a catalog image's qcow2 store file), or a user's
// encrypted overlay flattened over it and decrypted, as one qcow2 or
// streamOptimized vmdk (qemu-img convert -p, its progress passed on). The
// disk key reaches qemu-img only as the hex of a `secret` object read from its
// stdin: never an argument, an environment variable or a file, as the
// launcher gives it to QEMU over QMP. Node's stdio pipes are socket pairs,
// which /dev/stdin cannot open, so `cat` copies it into a real pipe (a shell
// pipeline) in between.
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { ExportError } from '../errors.ts';
import { lastWords, progressPercents } from '../images/qemu-img.ts';
import { currentPlatform } from '../platform/current.ts';
import { findQemuImg } from '../vmm/qemu-binary.ts';
import { hexBytes } from '../vmm/secret-bytes.ts';

export interface DiskSource {
  base: string;
  /** raw: a payload's base; qcow2: a catalog image's store file. */
  baseFormat: 'raw' | 'qcow2';
  /** A user's overlay and their disk key: the disk is the two flattened. */
  overlay?: { path: string; key: Buffer };
}

export type OutputDiskFormat = 'qcow2' | 'vmdk-stream';

export async function writeDisk(
  stickRoot: string,
  source: DiskSource,
  out: string,
  format: OutputDiskFormat,
  onPercent: (percent: number) => void,
): Promise<void> {
  const binary = findQemuImg(currentPlatform(), stickRoot);
  const formatArgs = format === 'qcow2' ? ['-O', 'qcow2'] : ['-O', 'vmdk', '-o', 'subformat=streamOptimized'];
  const input = source.overlay
    ? [
        '--object',
        'secret,id=pvmkey,format=raw,file=/dev/stdin',
        `json:${JSON.stringify({
          driver: 'qcow2',
          file: { driver: 'file', filename: source.overlay.path },
          encrypt: { format: 'luks', 'key-secret': 'pvmkey' },
          backing: { driver: source.baseFormat, file: { driver: 'file', filename: source.base } },
        })}`,
      ]
    : ['-f', source.baseFormat, source.base];
  const args = [...(binary.prefixArgs ?? []), 'convert', '-p', ...input, ...formatArgs, out];
  const [command, commandArgs] = source.overlay ? ['/bin/sh', ['-c', 'cat | "$@"', 'sh', binary.system, ...args]] : [binary.system, args];
  const child = spawn(command, commandArgs, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...binary.env } });
  // qemu-img may end (a wrong key, a damaged overlay) before it reads the key: its own error says why.
  child.stdin!.on('error', () => {});
  if (source.overlay) {
    const hex = hexBytes(source.overlay.key);
    child.stdin!.end(hex, () => hex.fill(0));
  } else child.stdin!.end();
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => progressPercents(text).forEach(onPercent));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exitCode = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
  if (exitCode !== 0) {
    await rm(out, { force: true });
    throw new ExportError('exportWrite', `qemu-img could not write ${out}: ${lastWords({ exitCode, stdout: '', stderr })}`, {
      details: { reason: 'disk', disk: out },
    });
  }
}

/** An extra disk of the configuration: empty, as the stick makes it at install. */
export async function writeEmptyDisk(stickRoot: string, out: string, sizeBytes: number, format: OutputDiskFormat): Promise<void> {
  const binary = findQemuImg(currentPlatform(), stickRoot);
  const args = [
    ...(binary.prefixArgs ?? []),
    'create',
    '-q',
    ...(format === 'qcow2' ? ['-f', 'qcow2'] : ['-f', 'vmdk', '-o', 'subformat=streamOptimized']),
    out,
    String(sizeBytes),
  ];
  const exitCode = await new Promise<number>((resolve, reject) => {
    const child = spawn(binary.system, args, { stdio: 'ignore', env: { ...process.env, ...binary.env } });
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
  if (exitCode !== 0) throw new ExportError('exportWrite', `qemu-img could not make the empty disk ${out}`, { details: { reason: 'disk', disk: out } });
}
