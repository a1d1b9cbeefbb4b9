// An image guest's system disk (docs/images.md): the user's own encrypted
// copy-on-write overlay (qcow2 + LUKS, keyed with their disk key) over the
// guest's read-only base image, attached while QEMU is paused. The base is
// opened read-only, so it never changes; every write of the guest's system
// lands in the overlay. The payload's initramfs finds the disk by its serial
// (pocketvm.root on the kernel command line), mounts it as / and starts the
// image's init (payload/rootfs/lib/pocketvm/switch-root.sh).
import { existsSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import type { UnlockedUser } from '../auth/users.ts';
import { SystemImageError } from '../errors.ts';
import { type BaseImage, type GuestPayload, verifyBase } from '../payload/guest-payload.ts';
import { NotQcow2Error, qcow2BackingFile } from '../primitives/qcow2-header.ts';
import { type StickLayout, systemOverlayPath } from '../stick/layout.ts';
import { attachEncryptedDisk, type EncryptedDiskResult } from '../vmm/encrypted-disk.ts';
import { hotplugPort } from '../vmm/qemu-args.ts';
import type { QmpClient } from '../vmm/qmp-client.ts';

export const ROOT_DISK_SERIAL = 'pocketvm-root';
/** The personal disk takes port 0 (src/session/personal-disk.ts). */
const ROOT_DISK_PORT = 1;
const BASE_NAME = /^base-([0-9a-f]{64})\.ext4$/;

/** Words for the kernel command line: which disk is the system, and its init. */
export function systemCmdline(base: Pick<BaseImage, 'init'>): string[] {
  return [`pocketvm.root=${ROOT_DISK_SERIAL}`, `pocketvm.init=${base.init}`];
}

export interface OverlayBase {
  overlay: string;
  /** The base the overlay is used over this launch. */
  base: BaseImage;
  /** False: the overlay was made over an older base still on the stick; the guest's newer base waits for `launcher upgrade`. */
  current: boolean;
  exists: boolean;
}

/**
 * The backing file an existing system overlay names (an image guest's base, or
 * the catalog image of a guest made from one); a file that is no qcow2
 * pocketvm made is refused with `hint`, never opened.
 */
export async function overlayBacking(overlay: string, hint: string): Promise<string | undefined> {
  try {
    return await qcow2BackingFile(overlay);
  } catch (error) {
    throw new SystemImageError(
      `${overlay} is not a system overlay pocketvm made (${error instanceof NotQcow2Error ? error.message : (error as Error).message})`,
      { hint, details: { reason: 'overlay', overlay }, cause: error },
    );
  }
}

/**
 * Which base this user's overlay goes over. A block-level overlay is valid only
 * over the exact base it was made on, so an overlay made over an older base
 * keeps that base (still on the stick, checked by its hash) until the person
 * upgrades; an overlay whose base is gone is refused, never opened over
 * another base.
 */
export async function overlayBase(layout: StickLayout, payload: Pick<GuestPayload, 'dir' | 'base'>, user: string, guest: string): Promise<OverlayBase> {
  const base = payload.base;
  if (!base) throw new Error(`internal: the ${guest} guest has no base image`);
  const overlay = systemOverlayPath(layout, user, guest);
  if (!existsSync(overlay)) return { overlay, base, current: true, exists: false };
  const backing = await overlayBacking(overlay, `move it away to start ${user}'s ${guest} system afresh from the base (their home is on another disk)`);
  const backingName = backing === undefined ? undefined : basename(backing);
  if (backingName === basename(base.path)) return { overlay, base, current: true, exists: true };
  const match = backingName ? BASE_NAME.exec(backingName) : null;
  const older = match ? join(payload.dir, backingName!) : undefined;
  if (!match || !older || !existsSync(older)) {
    throw new SystemImageError(`${user}'s ${guest} system was made over another base image (${backing ?? 'none'}), which is not on this stick`, {
      hint: `\`launcher upgrade --guest ${guest}\` starts their system afresh on this base (their home and settings stay); nothing was changed`,
      details: { reason: 'other-base', overlay, backing: backing ?? null, base: basename(base.path) },
    });
  }
  const { size } = await stat(older);
  const olderBase = await verifyBase(payload.dir, { file: backingName!, sha256: match[1]!, bytes: size, init: base.init });
  return { overlay, base: olderBase, current: false, exists: true };
}

/**
 * The attach hook for the paused machine: the base read-only, then the overlay
 * over it as virtio-blk. A base with a block list is served by the launcher
 * over NBD on a private UNIX socket (src/session/verified-base.ts), each block
 * checked as it is read; `baseSocket` opens that server. One without (an
 * older base, hashed in full at launch) is QEMU's own read-only file.
 */
export function attachSystemDisk(
  chosen: OverlayBase,
  user: Pick<UnlockedUser, 'diskKey'>,
  onAttached?: (result: EncryptedDiskResult) => void,
  baseSocket?: () => Promise<string | undefined>,
): (qmp: QmpClient) => Promise<void> {
  return async (qmp) => {
    await mkdir(dirname(chosen.overlay), { recursive: true });
    const socket = await baseSocket?.();
    await qmp.execute('blockdev-add', {
      driver: 'raw',
      'node-name': 'pvm-base',
      'read-only': true,
      file: socket
        ? { driver: 'nbd', server: { type: 'unix', path: socket }, 'read-only': true }
        : { driver: 'file', filename: chosen.base.path, 'read-only': true },
    });
    // keepSecret: a session can be suspended and resumed, as the personal disk's.
    const result = await attachEncryptedDisk(
      qmp,
      {
        path: chosen.overlay,
        key: user.diskKey,
        id: 'pvm-root',
        serial: ROOT_DISK_SERIAL,
        bus: hotplugPort(ROOT_DISK_PORT),
        sizeBytes: chosen.base.bytes,
        keepSecret: true,
        // Relative, so `qemu-img info` on the stick finds the base wherever the stick is mounted.
        backing: { node: 'pvm-base', fileName: relative(dirname(chosen.overlay), chosen.base.path) },
      },
      existsSync,
    );
    onAttached?.(result);
  };
}
