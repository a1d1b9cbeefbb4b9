// `run --guest NAME` for a guest of the stick: which payload it boots and the
// platform its committed configuration gives it, after checking that its state
// lets it boot (guest-states.ts, `boot`). A payload with no guest record (a
// stick made before guests) boots as before, by its own name.
import { existsSync } from 'node:fs';
import type { GuestPlatform } from '../session/launch/launch-options.ts';
import type { StickLayout } from '../stick/layout.ts';
import type { GuestConfig } from './guest-config.ts';
import { requireGuest } from './guest-lifecycle.ts';
import { requireState } from './guest-states.ts';
import { guestPaths, type GuestRecord, readJson } from './guest-store.ts';

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
  return { ...(record.source.name === name ? {} : { payload: record.source.name }), platform: platformOf(record.config) };
}
