// The helper appliance's control protocol (docs/files.md): how `launcher
// files …` reaches the appliance process of a stick. One JSON request per
// connection and one JSON response, except exec-stream, which is answered by
// a JSON line and then exec frames (src/session/exec-frames.ts), as a
// session's is. The socket lives in a private (0700) folder; every request
// carries the token written beside the socket's path in run/appliance.json.
import type { ExecRequest } from '../session/control-protocol.ts';
import type { ShareInfo } from './source-share.ts';

/** What `files open` asks for. */
export interface AttachRequest {
  op: 'attach';
  token: string;
  /** Absolute path of an image file or a block device on the host. */
  source: string;
  readOnly: boolean;
  /** 1-based partition number; 0 the whole disk; absent: the first with a file system. */
  partition?: number;
  /** A volume's id as `files open` printed it (2/luks, 4/vg0/data, 2/md): mount that one. */
  volume?: string;
  /**
   * The LUKS passphrase's length: that many raw bytes follow the request's
   * line on the connection (never inside the JSON, so no string holds it).
   */
  passphraseBytes?: number;
}

/** What `files check` asks for: the source's file system checked by its own fsck, without mounting or repairing. */
export interface CheckRequest {
  op: 'check';
  token: string;
  source: string;
  partition?: number;
  volume?: string;
  /** As in AttachRequest: the passphrase's bytes follow the line. */
  passphraseBytes?: number;
}

/** The longest passphrase a request may carry (cryptsetup's own limit for a typed one is 512). */
export const MAX_PASSPHRASE_BYTES = 4096;

/** What `image customize --copy-in` may carry in all, before base64 (larger files go in with `launcher files put`). */
export const MAX_COPY_IN_BYTES = 16 << 20;

/**
 * The longest request line the appliance daemon reads: the control socket's
 * 1 MiB is too small for a customize request, whose copied-in files travel in
 * it as base64 (4/3 of MAX_COPY_IN_BYTES), plus a megabyte for the rest.
 */
export const MAX_APPLIANCE_REQUEST_BYTES = Math.ceil((MAX_COPY_IN_BYTES * 4) / 3) + (1 << 20);

export interface CheckResult {
  source: string;
  partition: number;
  /** The volume checked (its id, as files open prints it). */
  volume: string;
  type: string;
  /** The checker's exit code: 0 is clean. */
  exitCode: number;
  clean: boolean;
  output: string;
}

/** What `files share NAME [--stop]` asks for. */
export interface ShareRequest {
  op: 'share';
  token: string;
  name: string;
  stop?: boolean;
}

/** One step of `image customize` (customize-handler.ts), in the person's order, generalize last. */
export type CustomizeStep =
  | { kind: 'hostname'; hostname: string }
  | { kind: 'user'; name: string; password?: string }
  | { kind: 'key'; name: string; key: string }
  | { kind: 'copy'; path: string; contentBase64: string; from: string }
  | { kind: 'firstboot'; command: string }
  | { kind: 'generalize' }
  // `image adapt` (src/images/image-adapt.ts, docs/adapt.md): probe changes nothing; debs is last.
  | { kind: 'probe'; modules: string[] }
  | { kind: 'drivers'; modules: string[] }
  | { kind: 'uuid' }
  | { kind: 'serial' }
  | { kind: 'netnames' }
  /** A host folder of .deb files, sent as a tar after the steps and installed with the image's own dpkg. */
  | { kind: 'debs'; dir: string };

/** What `image customize` asks for: the overlay plugged read-write, its root mounted, the steps applied. */
export interface CustomizeRequest {
  op: 'customize';
  token: string;
  /** A qcow2 overlay over the source image (its backing, opened read-only). */
  overlay: string;
  /** The root file system's partition (0: the whole disk; on LVM, its physical volume's), from the image's facts. */
  rootPartition: number;
  /** A root on an LVM logical volume: its VG/LV, activated read-write on the overlay for the steps. */
  rootVolume?: string;
  /** adapt: the image's own /boot and /boot/efi (in that order), mounted under its root for the steps and unmounted before it. */
  mounts?: GuestMount[];
  steps: CustomizeStep[];
}

/** A file system of the image mounted under its root: its partition, or a logical volume (VG/LV) of the root's volume group. */
export interface GuestMount {
  mountpoint: '/boot' | '/boot/efi';
  partition: number;
  volume: string | null;
}

export interface CustomizeResult {
  /** What pocketvm-customize reported done, one line a step. */
  done: string[];
  ms: number;
}

/** A share as it starts: the only time its password is told. */
export type NewShare = ShareInfo & { name: string; password: string; seconds: number };
/** What `image inspect` asks for: the source read-only, every file system looked at (inspect-handler.ts). */
export interface InspectRequest {
  op: 'inspect';
  token: string;
  source: string;
  /** QEMU's format driver, when the launcher knows it (else told from the header). */
  format?: string;
}

export interface InspectResult {
  source: string;
  format: string;
  /** pocketvm-inspect's lines, as printed. */
  report: string;
  /** Plug to unplug, in the appliance. */
  ms: number;
}

/**
 * `image capture` (src/images/image-capture.ts): a disk plugged at a free
 * target for the launcher's own commands in the appliance (pocketvm-capture),
 * until it is unplugged; read-only for a source, writable for the new disk.
 */
export interface PlugRequest {
  op: 'plug';
  token: string;
  source: string;
  format: string;
  readOnly: boolean;
}

export type ApplianceRequest =
  | AttachRequest
  | CheckRequest
  | ShareRequest
  | InspectRequest
  | CustomizeRequest
  | PlugRequest
  | { op: 'unplug'; token: string; target: number }
  | { op: 'close'; token: string; name: string }
  | { op: 'list'; token: string }
  | { op: 'stop'; token: string }
  | ExecRequest;

/** A partition (or the whole disk, number 0) and what blkid says it holds. */
export interface FoundPartition {
  number: number;
  device: string;
  bytes: number;
  /** blkid's TYPE (ext4, xfs, vfat, ntfs, crypto_LUKS, LVM2_member, …) or null. */
  type: string | null;
  label: string | null;
}

/**
 * What lies inside a partition, in layers (LUKS, md RAID, LVM), each with its
 * id: the path down from the partition it starts in (`2/luks`, `2/md` for an
 * array whose first member is partition 2, `4/vg0/data` for a logical volume
 * of the group whose first physical volume is partition 4, nested as deep as
 * the layers go: `4/vg0/secret/luks`).
 */
export interface FoundVolume {
  id: string;
  device: string;
  bytes: number;
  type: string | null;
  label: string | null;
  /** A LUKS volume that was left locked (no passphrase was given). */
  locked: boolean;
}

/** One open source, as `files open` prints it. */
export interface OpenSource {
  name: string;
  source: string;
  /** QEMU's format driver: raw, qcow2, vmdk, vhdx, vdi (host_device for a block device is raw). */
  format: string;
  readOnly: boolean;
  disk: { device: string; bytes: number; partitionTable: string | null };
  partitions: FoundPartition[];
  /** LUKS, md and LVM volumes found inside the partitions, unlocked and activated read-only unless --rw. */
  volumes: FoundVolume[];
  /** number: the partition it lies in; volume: its id (the partition's number when it is the partition itself). */
  mounted: { number: number; device: string; type: string; volume: string };
  /** Where it is mounted inside the appliance. */
  mountPoint: string;
  /** Its share while one runs (`files share`), without the password. */
  share?: ShareInfo;
}

export interface ApplianceResults {
  attach: OpenSource;
  check: CheckResult;
  inspect: InspectResult;
  customize: CustomizeResult;
  plug: { target: number };
  unplug: { target: number };
  close: { name: string };
  share: NewShare | { name: string; stopped: true };
  list: OpenSource[];
  stop: { stopped: true };
}

/** run/appliance.json: where the stick's running appliance listens. */
export interface ApplianceAddress {
  pid: number;
  path: string;
  token: string;
  privateDir?: string;
  startedAt: string;
}

const nullable = (value: string | undefined): string | null => (value === undefined || value === '-' ? null : value.replaceAll('_', ' '));

/**
 * The lines `pocketvm-files open` prints (payload/appliance-rootfs/usr/bin/pocketvm-files):
 * `disk DEV SIZE PTTYPE`, `part N DEV SIZE TYPE LABEL`, `mounted N DEV TYPE MODE`.
 */
export function parseOpenReport(text: string): Pick<OpenSource, 'disk' | 'partitions' | 'volumes' | 'mounted'> {
  const found = parseFound(text);
  if (!found.disk || !found.mounted) throw new Error(`the appliance's report is incomplete: ${JSON.stringify(text.slice(0, 200))}`);
  return { disk: found.disk, partitions: found.partitions, volumes: found.volumes, mounted: found.mounted };
}

/** Every line of the report, whole or not (a failed open still says what it found). */
export function parseFound(text: string): {
  disk?: OpenSource['disk'];
  partitions: FoundPartition[];
  volumes: FoundVolume[];
  mounted?: OpenSource['mounted'];
} {
  let disk: OpenSource['disk'] | undefined;
  let mounted: OpenSource['mounted'] | undefined;
  const partitions: FoundPartition[] = [];
  const volumes: FoundVolume[] = [];
  for (const line of text.split('\n')) {
    const [what, ...f] = line.trim().split(/\s+/);
    if (what === 'disk' && f.length >= 3) disk = { device: f[0]!, bytes: Number(f[1]), partitionTable: nullable(f[2]) };
    else if (what === 'part' && f.length >= 5)
      partitions.push({ number: Number(f[0]), device: f[1]!, bytes: Number(f[2]), type: nullable(f[3]), label: nullable(f[4]) });
    else if (what === 'vol' && f.length >= 5)
      volumes.push({ id: f[0]!, device: f[1]!, bytes: Number(f[2]), type: nullable(f[3]), label: nullable(f[4]), locked: false });
    else if (what === 'locked' && f.length >= 1) {
      const volume = volumes.find((v) => v.id === f[0]);
      if (volume) volume.locked = true;
      else {
        const partition = partitions.find((p) => String(p.number) === f[0]);
        if (partition)
          volumes.push({ id: f[0]!, device: partition.device, bytes: partition.bytes, type: partition.type, label: partition.label, locked: true });
      }
    } else if (what === 'mounted' && f.length >= 3) mounted = { number: Number(f[0]), device: f[1]!, type: f[2]!, volume: f[4] ?? f[0]! };
  }
  return { ...(disk ? { disk } : {}), partitions, volumes, ...(mounted ? { mounted } : {}) };
}

/** `checked N DEV TYPE EXIT`, printed by `pocketvm-files check`. */
export function parseCheckLine(text: string): { number: number; type: string; exitCode: number; volume: string } | undefined {
  const match = /^checked (\d+) \S+ (\S+) (\d+)(?: (\S+))?$/m.exec(text);
  return match ? { number: Number(match[1]), type: match[2]!, exitCode: Number(match[3]), volume: match[4] ?? match[1]! } : undefined;
}

/** One entry of `pocketvm-files ls|stat`: `hexmode size mtime nlink NAME`. */
export interface FileEntry {
  name: string;
  kind: 'file' | 'directory' | 'symlink' | 'other';
  mode: number;
  size: number;
  mtime: number;
  links: number;
  target?: string;
  /** stat only: its extended attributes (user.*, trusted.*, security.*, …), each value base64. */
  xattrs?: Record<string, string>;
}

/** Where the appliance mounts each open source (pocketvm-files: /mnt/files/NAME). */
export const MOUNT_ROOT = '/mnt/files';

export function parseEntries(text: string): FileEntry[] {
  const entries: FileEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('link ') && entries.length > 0) {
      entries[entries.length - 1]!.target = line.slice(5);
      continue;
    }
    const xattr = /^xattr (\S+) ?([0-9a-f]*)$/.exec(line);
    if (xattr && entries.length > 0 && xattr[2]!.length % 2 === 0) {
      const entry = entries[entries.length - 1]!;
      entry.xattrs = { ...entry.xattrs, [xattr[1]!]: Buffer.from(xattr[2]!, 'hex').toString('base64') };
      continue;
    }
    const match = /^([0-9a-f]+) (\d+) (\d+) (\d+) (.*)$/.exec(line);
    if (!match) continue;
    const raw = parseInt(match[1]!, 16);
    const type = raw & 0o170000;
    const kind = type === 0o100000 ? 'file' : type === 0o040000 ? 'directory' : type === 0o120000 ? 'symlink' : 'other';
    entries.push({ name: match[5]!.replace(/^\.\//, ''), kind, mode: raw & 0o7777, size: Number(match[2]), mtime: Number(match[3]), links: Number(match[4]) });
  }
  return entries;
}
