// The drive list as a presence signal (`drivelist`, the library etcher uses to
// find USB drives): at start, the drive whose mount point holds the stick
// root; then, at a modest interval (on Linux each look runs lsblk), that drive
// leaving the list, or no longer mounting the stick, means it was pulled out.
// A stick that is a folder on the system drive is not watched this way: that
// drive never leaves, and the direct probe covers the folder itself.
import { realpath } from 'node:fs/promises';
import { sep } from 'node:path';
import { EvidencePoller } from './evidence-poller.ts';
import type { Evidence, PresenceSource } from './presence-source.ts';

/** The part of drivelist's Drive this module reads. */
export interface ListedDrive {
  device: string;
  description?: string;
  isSystem: boolean;
  isRemovable: boolean;
  isUSB: boolean | null;
  mountpoints: Array<{ path: string }>;
}

export type DriveLister = () => Promise<ListedDrive[]>;

function within(path: string, mountpoint: string): boolean {
  if (mountpoint === path) return true;
  const prefix = mountpoint.endsWith(sep) ? mountpoint : mountpoint + sep;
  return path.startsWith(prefix);
}

/** The drive and mount point holding `path` (the longest mount point that contains it). */
export function driveHolding(drives: readonly ListedDrive[], path: string): { drive: ListedDrive; mountpoint: string } | undefined {
  let best: { drive: ListedDrive; mountpoint: string } | undefined;
  for (const drive of drives) {
    for (const { path: mountpoint } of drive.mountpoints) {
      if (within(path, mountpoint) && (!best || mountpoint.length > best.mountpoint.length)) best = { drive, mountpoint };
    }
  }
  return best;
}

/** drivelist, loaded on first use; undefined where it is not installed or cannot load. */
async function loadDrivelist(): Promise<DriveLister | undefined> {
  try {
    const module = (await import('drivelist')) as { list?: DriveLister; default?: { list?: DriveLister } };
    const list = module.list ?? module.default?.list;
    return typeof list === 'function' ? list : undefined;
  } catch {
    return undefined;
  }
}

export function drivelistSource(
  root: string,
  options: { intervalMs: number; lister?: DriveLister; known?: { device: string; mountpoint: string } },
): PresenceSource {
  let list: DriveLister | undefined;
  let watched: { device: string; mountpoint: string } | undefined;

  const look = async (): Promise<Evidence | undefined> => {
    if (!list || !watched) return undefined;
    let drives: ListedDrive[];
    try {
      drives = await list();
    } catch {
      return undefined; // the lister failing says nothing about the stick
    }
    const drive = drives.find((candidate) => candidate.device === watched!.device);
    if (!drive) return { signal: 'drivelist', detail: `the drive ${watched.device} is no longer listed` };
    if (!drive.mountpoints.some((m) => m.path === watched!.mountpoint))
      return { signal: 'drivelist', detail: `the drive ${watched.device} no longer mounts ${watched.mountpoint}` };
    return undefined;
  };

  const poller = new EvidencePoller(look);

  return {
    name: 'drivelist',
    async start(report) {
      poller.attach(report);
      list = options.lister ?? (await loadDrivelist());
      if (!list) return false;
      if (options.known) {
        // The host probe already found the stick's drive (and that it is removable).
        watched = options.known;
      } else {
        const path = await realpath(root);
        let drives: ListedDrive[];
        try {
          drives = await list();
        } catch {
          return false;
        }
        const holding = driveHolding(drives, path);
        if (!holding) return false;
        // A folder on the system disk: that drive will not be pulled out.
        if (holding.drive.isSystem && !holding.drive.isRemovable && holding.drive.isUSB !== true) return false;
        watched = { device: holding.drive.device, mountpoint: holding.mountpoint };
      }
      return poller.start(options.intervalMs);
    },
    recheck: poller.probe,
    stop() {
      poller.stop();
    },
  };
}
