// Launch step 1: the stick opened, QEMU found, room checked, the stick lock
// taken, the guest's payload checked. A failure after the lock releases it.
import type { GuestManifest } from '../../payload/guest-manifest.ts';
import { type GuestPayload, openGuestPayload } from '../../payload/guest-payload.ts';
import { packaged } from '../../runtime/self.ts';
import { requireRoomToLaunch } from '../../stick/free-space.ts';
import type { StickLayout } from '../../stick/layout.ts';
import { acquireLock, type StickLock } from '../../stick/lock.ts';
import { guestSessionLayout } from '../../stick/session-locks.ts';
import { openStick } from '../../stick/stick-root.ts';
import { findQemu, type QemuBinaries } from '../../vmm/qemu-binary.ts';
import type { LaunchContext } from './launch-context.ts';
import type { GuestPlatform } from './launch-options.ts';

export interface PreparedStick {
  layout: StickLayout;
  qemu: QemuBinaries;
  lock: StickLock;
  payload: GuestPayload;
}

/** The manifest as the guest's platform changes it: its size is what the guest recommends, its rules are added. */
export function withPlatform(manifest: GuestManifest, platform: GuestPlatform): GuestManifest {
  const memoryMiB = Math.max(platform.memoryMiB ?? manifest.memory.recommendedMiB, manifest.memory.minimumMiB);
  const cpus = Math.max(platform.cpus ?? manifest.cpus.recommended, manifest.cpus.minimum);
  return {
    ...manifest,
    memory: { ...manifest.memory, recommendedMiB: memoryMiB },
    cpus: { ...manifest.cpus, recommended: cpus },
    devices: { ...manifest.devices, network: platform.network ?? manifest.devices.network },
    ...(platform.tables && platform.tables.length > 0 ? { tables: [...(manifest.tables ?? []), ...platform.tables] } : {}),
  };
}

export async function prepareStick(ctx: LaunchContext): Promise<PreparedStick> {
  const { options, host, emit } = ctx;
  emit({ stage: 'stick', message: `opening the stick at ${options.stickRoot}` });
  // The guest's own session lock: other guests may run from the stick at the same time.
  const layout = guestSessionLayout(await openStick(options.stickRoot), options.guest);
  const qemu = findQemu(host, layout.root);
  if (qemu.source !== 'stick' && packaged) emit({ stage: 'qemu', message: `no portable QEMU for ${host.platform} on this stick; using ${qemu.system}` });
  if (qemu.notice) emit({ stage: 'qemu', message: qemu.notice });
  // Before the lock: on a stick with no room at all, even the lock file could not be written.
  await requireRoomToLaunch(layout.root);
  const lock = await acquireLock(layout, options.command, { guest: options.guest, state: 'starting', ...(options.page ? { page: options.page } : {}) });
  try {
    const folder = options.payload ?? options.guest;
    emit({ stage: 'payload', message: `checking the ${folder} payload${folder === options.guest ? '' : ` of guest ${options.guest}`}` });
    const payload = await openGuestPayload(layout.payloadRoot, folder);
    return { layout, qemu, lock, payload: options.platform ? { ...payload, manifest: withPlatform(payload.manifest, options.platform) } : payload };
  } catch (error) {
    await lock.release();
    throw error;
  }
}
