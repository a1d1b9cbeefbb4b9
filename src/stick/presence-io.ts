// Direct evidence that the stick is gone, with no hardware knowledge at all:
// every interval, a cheap look at a descriptor held open on the stick, at the
// stick's root (still there, still the same directory, not the mount point
// left behind by an unmount, its first entry still readable), and on Linux at
// the block device in sysfs.
// A yanked device answers with ENOTCONN (FUSE), EIO, ENODEV, ENXIO, ESTALE,
// or its root is simply gone (ENOENT). Lookups run on libuv's thread pool,
// one at a time, so a device that hangs never blocks the launcher.
import { existsSync } from 'node:fs';
import { type FileHandle, open, opendir, stat } from 'node:fs/promises';
import { platformOf } from '../platform/current.ts';
import { stickLayout } from './layout.ts';
import { EvidencePoller } from './evidence-poller.ts';
import type { Evidence, PresenceSource } from './presence-source.ts';

/** The error codes that mean the device under a path is gone. */
export const GONE_CODES: ReadonlySet<string> = new Set(['ENOTCONN', 'EIO', 'ENOENT', 'ENODEV', 'ENXIO', 'ESTALE', 'ENOMEDIUM', 'EREMOTEIO']);

export function meansGone(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && GONE_CODES.has(code);
}

/** Linux's dev_t split (glibc's gnu_dev_major/minor). */
export function devMajorMinor(dev: bigint): { major: bigint; minor: bigint } {
  return {
    major: ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn),
    minor: (dev & 0xffn) | ((dev >> 12n) & ~0xffn),
  };
}

/** /sys/dev/block/M:m for the block device a filesystem lives on, if it is one (FUSE, tmpfs: no). */
export function sysfsBlockDevice(dev: bigint, sysRoot = '/sys'): string | undefined {
  const { major, minor } = devMajorMinor(dev);
  if (major === 0n) return undefined;
  const path = `${sysRoot}/dev/block/${major}:${minor}`;
  return existsSync(path) ? path : undefined;
}

interface Baseline {
  dev: bigint;
  ino: bigint;
  blockDevice: string | undefined;
}

export function ioSource(root: string, options: { intervalMs: number; sysRoot?: string }): PresenceSource & { readonly heldPath: string | undefined } {
  let held: FileHandle | undefined;
  let heldPath: string | undefined;
  let baseline: Baseline | undefined;

  /** One look; undefined when all is well. */
  const look = async (): Promise<Evidence | undefined> => {
    try {
      await held?.stat();
    } catch (error) {
      if (meansGone(error)) return { signal: 'io', detail: `fstat ${heldPath}: ${(error as NodeJS.ErrnoException).code}` };
    }
    try {
      const now = await stat(root, { bigint: true });
      if (baseline && (now.dev !== baseline.dev || now.ino !== baseline.ino)) {
        return { signal: 'root-replaced', detail: `${root} is no longer the stick's directory (unmounted)` };
      }
    } catch (error) {
      if (meansGone(error)) {
        const code = (error as NodeJS.ErrnoException).code;
        return { signal: code === 'ENOENT' ? 'root-gone' : 'io', detail: `stat ${root}: ${code}` };
      }
    }
    // Attributes are cached (FUSE keeps them for a second), a listing is not:
    // reading the root's entries reaches the filesystem (or its daemon) itself.
    try {
      const dir = await opendir(root);
      await dir.read();
      await dir.close();
    } catch (error) {
      if (meansGone(error)) return { signal: 'io', detail: `reading ${root}: ${(error as NodeJS.ErrnoException).code}` };
    }
    if (baseline?.blockDevice && !existsSync(baseline.blockDevice)) {
      return { signal: 'block-device', detail: `the block device ${baseline.blockDevice} is gone` };
    }
    return undefined;
  };

  const poller = new EvidencePoller(look);

  return {
    name: 'io',
    get heldPath() {
      return heldPath;
    },
    async start(report) {
      poller.attach(report);
      const first = await stat(root, { bigint: true });
      baseline = { dev: first.dev, ino: first.ino, blockDevice: platformOf()?.sysfsBlockDevices ? sysfsBlockDevice(first.dev, options.sysRoot) : undefined };
      // A descriptor held on the stick: the marker file, else the root itself.
      for (const candidate of [stickLayout(root).marker, root]) {
        try {
          held = await open(candidate, 'r');
          heldPath = candidate;
          break;
        } catch {
          // try the next
        }
      }
      return poller.start(options.intervalMs);
    },
    recheck: poller.probe,
    stop() {
      poller.stop();
      // Closing a descriptor on a dead device fails; it is released all the same.
      void held?.close().catch(() => {});
      held = undefined;
    },
  };
}
