// `qemu-img check` on a qcow2 disk, and its safe repair (`-r leaks`: clusters
// allocated but referenced by nothing, what a QEMU killed mid-write leaves;
// freeing them touches no data). Corruptions are reported, never "repaired":
// `-r all` may throw data away, and that is the person's call.
//
// An encrypted qcow2 cannot even be opened without its key (QEMU 7.2 checks
// through the crypto layer). The key goes the way the QMP path sends it (a
// `secret` object, hex), but into qemu-img through a pipe: `cat` copies it
// from the launcher's stdin socket into a real pipe that qemu-img reads as
// /dev/stdin. Never an argument, an environment variable or a file.
import { execa } from 'execa';
import type { QemuBinaries } from './qemu-binary.ts';
import { hexBytes } from './secret-bytes.ts';

export type DiskCheckStatus = 'clean' | 'leaks' | 'corrupt' | 'in-use' | 'failed';

export interface DiskCheckResult {
  path: string;
  status: DiskCheckStatus;
  leaks: number;
  corruptions: number;
  /** With a repair: what qemu-img fixed. */
  leaksFixed: number;
  corruptionsFixed: number;
  /** qemu-img's own last words when it could not check. */
  message?: string;
  ms: number;
}

interface QemuImgCheckJson {
  leaks?: number;
  corruptions?: number;
  'leaks-fixed'?: number;
  'corruptions-fixed'?: number;
  'check-errors'?: number;
}

/** qemu-img's --image-opts syntax doubles commas inside a value. */
function optValue(value: string): string {
  return value.replaceAll(',', ',,');
}

const SECRET_ID = 'pvm-check-key';

export function diskCheckArgs(path: string, options: { encrypted: boolean; repair?: 'leaks' }): string[] {
  const repair = options.repair ? ['-r', options.repair] : [];
  if (!options.encrypted) return ['check', '--output=json', ...repair, '-f', 'qcow2', path];
  return [
    'check',
    '--output=json',
    ...repair,
    '--object',
    `secret,id=${SECRET_ID},file=/dev/stdin,format=raw`,
    '--image-opts',
    `driver=qcow2,file.filename=${optValue(path)},encrypt.key-secret=${SECRET_ID}`,
  ];
}

export async function checkDisk(
  qemuImg: QemuBinaries,
  path: string,
  options: { key?: Buffer; repair?: 'leaks'; timeoutMs?: number } = {},
): Promise<DiskCheckResult> {
  const started = performance.now();
  const args = [
    ...(qemuImg.prefixArgs ?? []),
    ...diskCheckArgs(path, { encrypted: options.key !== undefined, ...(options.repair ? { repair: options.repair } : {}) }),
  ];
  const env = { ...qemuImg.env, LC_ALL: 'C' };
  const common = { reject: false, env, extendEnv: true, timeout: options.timeoutMs ?? 120_000 } as const;
  // The key's hex spelling as bytes, zeroed once qemu-img is done (no JavaScript string of it).
  const hex = options.key ? hexBytes(options.key) : undefined;
  const run = hex
    ? execa('/bin/sh', ['-c', 'cat | exec "$0" "$@"', qemuImg.system, ...args], { ...common, input: hex })
    : execa(qemuImg.system, args, { ...common, stdin: 'ignore' });
  const result = await run.finally(() => hex?.fill(0));
  const ms = Math.round(performance.now() - started);
  const stderr = String(result.stderr).trim();
  const base = { path, leaks: 0, corruptions: 0, leaksFixed: 0, corruptionsFixed: 0, ms };
  let json: QemuImgCheckJson | undefined;
  try {
    json = JSON.parse(String(result.stdout)) as QemuImgCheckJson;
  } catch {
    json = undefined;
  }
  if (!json) {
    const lastWords = stderr.split('\n').at(-1) ?? `exit ${result.exitCode}`;
    return { ...base, status: /Failed to get .*lock/i.test(stderr) ? 'in-use' : 'failed', message: lastWords.replace(/^qemu-img: /, '') };
  }
  const leaks = json.leaks ?? 0;
  const corruptions = json.corruptions ?? 0;
  const status: DiskCheckStatus = corruptions > 0 ? 'corrupt' : leaks > 0 ? 'leaks' : (json['check-errors'] ?? 0) > 0 ? 'failed' : 'clean';
  return {
    ...base,
    status,
    leaks,
    corruptions,
    leaksFixed: json['leaks-fixed'] ?? 0,
    corruptionsFixed: json['corruptions-fixed'] ?? 0,
    ...(status === 'failed' ? { message: stderr || 'qemu-img could not read every cluster' } : {}),
  };
}
