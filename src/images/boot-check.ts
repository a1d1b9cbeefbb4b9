// The boot check of `launcher image capture` (docs/image-store.md, "Capture"):
// before a captured image enters the catalog, QEMU boots it from its own disk
// (SeaBIOS, or OVMF for a UEFI image) in a throwaway qcow2 overlay and the
// check waits until the image's kernel prints its banner ("Linux version …")
// on the first serial port. So it proves the firmware found the bootloader
// on the new disk, the bootloader found its configuration and the kernel by
// the file systems' UUIDs, and the kernel started; not that the system's
// userland comes up. The overlay's grub.cfg (never the image's) has
// console=ttyS0 added to its kernel lines first, since a kernel writes to the
// serial port only when told (pocketvm-capture serial).
import { spawn } from 'node:child_process';
import { copyFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { CaptureError } from '../errors.ts';
import { currentPlatform } from '../platform/current.ts';
import { findQemu } from '../vmm/qemu-binary.ts';

/** What the check waits for on the serial port: the kernel's first line. */
export const KERNEL_BANNER = 'Linux version ';

/** Where Debian's ovmf package puts the UEFI firmware (code read-only, a copy of the variables per boot). */
export const OVMF = [
  { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/usr/share/OVMF/OVMF_VARS_4M.fd' },
  { code: '/usr/share/OVMF/OVMF_CODE.fd', vars: '/usr/share/OVMF/OVMF_VARS.fd' },
];

export interface BootCheckResult {
  firmware: 'bios' | 'uefi';
  /** Power-on to the kernel's banner. */
  ms: number;
  /** The banner's line, as the kernel printed it. */
  banner: string;
  /** With options.collect: the serial lines that contain one of its strings, from the first such string on. */
  collected?: string[];
}

/** The lines of SERIAL holding one of NEEDLES, each cut to start at it (the console may write before it on the same line). */
function collectLines(serial: string, needles: readonly string[]): string[] {
  return serial.split(/\r?\n/).flatMap((line) => {
    const at = Math.min(...needles.map((needle) => line.indexOf(needle)).filter((index) => index >= 0));
    return Number.isFinite(at) ? [line.slice(at).trim()] : [];
  });
}

/**
 * What else a caller may wait for (`image adapt`'s test, docs/adapt.md): a
 * marker the image's userland prints on ttyS0 instead of the kernel's banner,
 * lines that end the boot early as a failure (an initramfs that gave up on
 * its root), and the disk's bus (virtio by default, as the stick's guests).
 * The adapt test also hands the guest a cloud-init NoCloud seed (docs/export.md)
 * and network cards by MAC, and reads back the lines its userland reports.
 */
export interface BootCheckOptions {
  until?: string;
  failOn?: string[];
  disk?: 'virtio' | 'sata';
  /** A raw disk image (a cidata ISO) as a second, read-only virtio disk, where cloud-init's NoCloud looks for its seed. */
  seedDisk?: string;
  /** Virtio network cards with these MACs, in this order, each on its own user-mode network that reaches nothing outside. */
  nicMacs?: string[];
  /** Serial lines that contain any of these, as printed before the boot check ended (result.collected). */
  collect?: string[];
}

export async function bootCheck(
  stickRoot: string,
  overlay: string,
  firmware: 'bios' | 'uefi',
  scratch: string,
  timeoutMs: number,
  options: BootCheckOptions = {},
): Promise<BootCheckResult> {
  const qemu = findQemu(currentPlatform(), stickRoot);
  const until = options.until ?? KERNEL_BANNER;
  const args = ['-machine', 'q35', '-accel', 'tcg', '-m', '512', '-nodefaults', '-display', 'none', '-no-reboot', '-serial', 'stdio', '-monitor', 'none'];
  if (options.disk === 'sata') args.push('-drive', `file=${overlay},format=qcow2,if=none,id=disk0`, '-device', 'ide-hd,drive=disk0,bus=ide.0');
  else args.push('-drive', `file=${overlay},format=qcow2,if=virtio`);
  if (options.seedDisk) args.push('-drive', `file=${options.seedDisk},format=raw,if=virtio,readonly=on`);
  for (const [index, mac] of (options.nicMacs ?? []).entries())
    args.push('-netdev', `user,id=net${index},restrict=on`, '-device', `virtio-net-pci,netdev=net${index},mac=${mac}`);
  const vars = `${scratch}.vars`;
  if (firmware === 'uefi') {
    const ovmf = OVMF.find((f) => existsSync(f.code) && existsSync(f.vars));
    if (!ovmf)
      throw new CaptureError('captureBootCheck', 'the image boots by UEFI and no UEFI firmware (OVMF) was found for its boot check', {
        hint: 'install the ovmf package',
        details: { reason: 'no-firmware' },
      });
    await copyFile(ovmf.vars, vars);
    args.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${ovmf.code}`, '-drive', `if=pflash,format=raw,unit=1,file=${vars}`);
  }
  const started = performance.now();
  try {
    return await new Promise<BootCheckResult>((resolve, reject) => {
      const child = spawn(qemu.system, [...(qemu.prefixArgs ?? []), ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...qemu.env } });
      let seen = '';
      let errors = '';
      let settled = false;
      const finish = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        child.kill('SIGKILL');
        outcome();
      };
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(
              new CaptureError('captureBootCheck', `the captured image did not reach its kernel within ${timeoutMs / 1000} s (${firmware})`, {
                details: { reason: 'timeout', serial: seen.slice(-2000) },
              }),
            ),
          ),
        timeoutMs,
      );
      child.stdout.setEncoding('latin1').on('data', (text: string) => {
        seen = (seen + text).slice(-64 << 10);
        const failed = options.failOn?.find((line) => seen.includes(line));
        if (failed)
          return finish(() =>
            reject(
              new CaptureError('captureBootCheck', `the image's boot failed (${firmware}): ${failed}`, {
                details: { reason: 'failed-on', line: failed, serial: seen.slice(-2000) },
              }),
            ),
          );
        const at = seen.indexOf(until);
        if (at >= 0 && seen.indexOf('\n', at) > 0) {
          const banner = seen.slice(at, seen.indexOf('\n', at)).trim();
          const collected = options.collect ? { collected: collectLines(seen.slice(0, at), options.collect) } : {};
          finish(() => resolve({ firmware, ms: Math.round(performance.now() - started), banner, ...collected }));
        }
      });
      child.stderr.setEncoding('utf8').on('data', (text: string) => (errors += text));
      child.on('error', (error) => finish(() => reject(error)));
      child.on('exit', (code) =>
        finish(() =>
          reject(
            new CaptureError(
              'captureBootCheck',
              `QEMU ended (exit ${code}) before the captured image reached its kernel: ${errors.trim().split('\n').at(-1) ?? ''}`,
              {
                details: { reason: 'ended', serial: seen.slice(-2000) },
              },
            ),
          ),
        ),
      );
    });
  } finally {
    await rm(vars, { force: true });
  }
}
