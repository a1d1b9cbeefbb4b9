// The stick as a drive: which drive (drivelist) holds the stick root, and
// which USB device (usb) that drive is. Matching is pure and takes plain
// lists, so it is tested without hardware; the listing functions load the
// native addons lazily and let their failures surface to probeHost, which
// turns them into a null and a note.
import type { StickDrive, StickFacts, UsbIdentity } from './host-profile.ts';

/** The part of a drivelist drive the probe reads. */
export interface ListedDrive {
  device: string;
  description?: string | null;
  busType?: string | null;
  size?: number | null;
  isReadOnly: boolean;
  isRemovable: boolean;
  isSystem: boolean;
  isVirtual?: boolean | null;
  isUSB?: boolean | null;
  mountpoints: Array<{ path: string }>;
}

/** The part of a `usb` device the probe reads. */
export interface ListedUsbDevice {
  vendorId: number;
  productId: number;
  bus?: string;
  ports?: number[];
  serialNumber?: string | null;
  manufacturerName?: string | null;
  productName?: string | null;
  deviceClass?: number;
  /** Interface classes of the active configuration (8 = mass storage). */
  interfaceClasses?: number[];
}

function trimSeparators(path: string): string {
  // `/`, `C:\` stay as they are; `/media/stick/` → `/media/stick`.
  if (path === '/' || /^[A-Za-z]:[\\/]?$/.test(path)) return path;
  return path.replace(/[\\/]+$/, '');
}

/** Whether `mountpoint` holds `path` (equal, or a parent directory of it). */
export function mountHolds(mountpoint: string, path: string, caseInsensitive = false): boolean {
  let mount = trimSeparators(mountpoint);
  let target = trimSeparators(path);
  if (caseInsensitive) {
    mount = mount.toLowerCase();
    target = target.toLowerCase();
  }
  if (mount === target) return true;
  if (mount.endsWith('/') || mount.endsWith('\\')) return target.startsWith(mount);
  return target.startsWith(`${mount}/`) || target.startsWith(`${mount}\\`);
}

/** The drive whose mount point is the longest prefix of `stickRoot`, and that mount point. */
export function findStickDrive(stickRoot: string, drives: ListedDrive[], caseInsensitive: boolean): { drive: ListedDrive; mountpoint: string } | null {
  let best: { drive: ListedDrive; mountpoint: string } | null = null;
  for (const drive of drives) {
    for (const { path } of drive.mountpoints) {
      if (!path || !mountHolds(path, stickRoot, caseInsensitive)) continue;
      if (!best || trimSeparators(path).length > trimSeparators(best.mountpoint).length) best = { drive, mountpoint: path };
    }
  }
  return best;
}

export function describeDrive(drive: ListedDrive): StickDrive {
  return {
    device: drive.device,
    description: drive.description || null,
    // lsblk without a transport says UNKNOWN: that is no bus name.
    bus: drive.busType && drive.busType.toUpperCase() !== 'UNKNOWN' ? drive.busType : null,
    removable: drive.isRemovable,
    usb: drive.isUSB ?? null,
    system: drive.isSystem,
    virtual: drive.isVirtual ?? null,
    sizeBytes: typeof drive.size === 'number' ? drive.size : null,
    readOnly: drive.isReadOnly,
  };
}

/** A removable (not virtual) drive, or one on a USB bus, is a real stick; anything else holding the root is a folder on a fixed disk. */
export function stickKind(drive: StickDrive | null): StickFacts['kind'] {
  if (!drive) return 'unknown';
  const usb = drive.usb === true || drive.bus?.toUpperCase() === 'USB';
  return (drive.removable && drive.virtual !== true) || usb ? 'removable' : 'fixed-disk-folder';
}

const hex4 = (n: number) => n.toString(16).padStart(4, '0');

function identity(device: ListedUsbDevice, matchedBy: UsbIdentity['matchedBy']): UsbIdentity {
  return {
    vendorId: hex4(device.vendorId),
    productId: hex4(device.productId),
    serial: device.serialNumber || null,
    manufacturer: device.manufacturerName || null,
    product: device.productName || null,
    matchedBy,
  };
}

/** The `usb` device name for a port path: `1-2.3` (the `bus` string usb reports, or bus number + ports). */
function portPathOf(device: ListedUsbDevice): string[] {
  const names = [];
  if (device.bus) names.push(device.bus);
  if (device.bus && /^\d+$/.test(device.bus) && device.ports?.length) names.push(`${device.bus}-${device.ports.join('.')}`);
  return names;
}

/**
 * The USB device that is the stick's drive: the one at the drive's USB port
 * path (Linux sysfs), or, where the OS gives no path, the only mass-storage
 * device present. Null when it cannot be told.
 */
export function matchUsbIdentity(devices: ListedUsbDevice[], portPath: string | null): UsbIdentity | null {
  if (portPath) {
    const device = devices.find((d) => portPathOf(d).includes(portPath));
    return device ? identity(device, 'port-path') : null;
  }
  const storage = devices.filter((d) => d.deviceClass === 8 || d.interfaceClasses?.includes(8));
  return storage.length === 1 ? identity(storage[0]!, 'only-mass-storage-device') : null;
}

/** All drives, through drivelist (lsblk on Linux, its native addon on Windows and macOS). */
export async function listDrives(): Promise<ListedDrive[]> {
  const drivelist = (await import('drivelist')) as unknown as { list(): Promise<ListedDrive[]>; default?: { list(): Promise<ListedDrive[]> } };
  return (drivelist.list ?? drivelist.default!.list)();
}

interface UsbModule {
  usb: { getDevices(): Promise<Array<ListedUsbDevice & { configuration?: { interfaces?: Array<{ alternate?: { interfaceClass?: number } }> } | null }>> };
}

/** All USB devices, through `usb`; throws where the OS gives no access (no /sys/bus/usb, no permission). */
export async function listUsbDevices(): Promise<ListedUsbDevice[]> {
  const module = (await import('usb')) as unknown as UsbModule & { default?: UsbModule };
  const usb = module.usb ?? module.default!.usb;
  const devices = await usb.getDevices();
  return devices.map((d) => {
    let interfaceClasses: number[] = [];
    try {
      interfaceClasses = (d.configuration?.interfaces ?? []).map((i) => i.alternate?.interfaceClass).filter((c): c is number => typeof c === 'number');
    } catch {
      // descriptors unreadable without opening the device: class unknown
    }
    let serialNumber: string | null = null;
    let manufacturerName: string | null = null;
    let productName: string | null = null;
    try {
      serialNumber = d.serialNumber ?? null;
      manufacturerName = d.manufacturerName ?? null;
      productName = d.productName ?? null;
    } catch {
      // string descriptors may need access the user lacks
    }
    return {
      vendorId: d.vendorId,
      productId: d.productId,
      ...(d.bus === undefined ? {} : { bus: d.bus }),
      ...(d.ports === undefined ? {} : { ports: d.ports }),
      ...(d.deviceClass === undefined ? {} : { deviceClass: d.deviceClass }),
      serialNumber,
      manufacturerName,
      productName,
      interfaceClasses,
    };
  });
}
