// `run --guest NAME` for a guest of the stick: which payload it boots and the
// platform its committed configuration gives it, after checking that its state
// lets it boot (guest-states.ts, `boot`). A guest made from a catalog image
// boots the default payload with the image as its system (./image-source.ts),
// its store file checked against what install pinned. A payload with no guest record (a
// stick made before guests) boots as before, by its own name.
import { existsSync } from 'node:fs';
import type { GuestPlatform } from '../session/launch/launch-options.ts';
import type { StickLayout } from '../stick/layout.ts';
import type { GuestConfig } from './guest-config.ts';
import { requireGuest } from './guest-lifecycle.ts';
import { requireState } from './guest-states.ts';
import { guestPaths, type GuestRecord, readInstall, readJson } from './guest-store.ts';
import { checkImageFile, guestImage, IMAGE_GUEST_PAYLOAD, launchImage } from './image-source.ts';

export interface GuestLaunch {
  /** The payload folder it boots (absent: the guest's own name). */
  payload?: string;
  platform?: GuestPlatform;
}

export function platformOf(config: GuestConfig): GuestPlatform {
  return {
    ...(config.memoryMiB === undefined ? {} : { memoryMiB: config.memoryMiB }),
    ...(config.cpus === undefined ? {} : { cpus: config.cpus }),
    network: config.network,
    ...(config.mac === undefined ? {} : { mac: config.mac }),
    tables: config.shares.map((share) => ({
      name: `guest-${share.name}`,
      table: share.table,
      guestPath: share.guestPath,
      ...(share.hostPath === undefined ? {} : { hostPath: share.hostPath }),
      ...(share.mode === undefined ? {} : { mode: share.mode }),
      description: `guest config share ${share.name}`,
    })),
  };
}

export async function guestLaunch(layout: StickLayout, name: string): Promise<GuestLaunch> {
  // Not a stick, or no guest record (a payload booted by its own name, as
  // before guests): the launch itself checks the stick and payload (exit 9, 4).
  if (!existsSync(layout.marker) || !existsSync(guestPaths(layout, name).dir)) return {};
  const view = await requireGuest(layout, name);
  requireState('boot', name, view.state, view.reason);
  const record = await readJson<GuestRecord>(guestPaths(layout, name).record);
  if (!record) return {};
  if (record.source.kind === 'image') {
    const system = guestImage(layout, record.source.sha256, name);
    const install = await readInstall(guestPaths(layout, name));
    await checkImageFile(system, install?.files[system.image.file] ?? '', name);
    const image = launchImage(system);
    return { payload: IMAGE_GUEST_PAYLOAD, platform: { ...platformOf(record.config), image } };
  }
  return { ...(record.source.name === name ? {} : { payload: record.source.name }), platform: platformOf(record.config) };
}
