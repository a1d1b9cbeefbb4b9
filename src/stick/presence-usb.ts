// USB detach as a presence signal (the `usb` package, nusb underneath): the
// stick's own USB device leaving is the earliest and surest sign. It only
// counts for the stick's device, so that device must be known first: on
// Linux, sysfs leads from the stick's block device up to the USB device
// (vendor, product, serial, address). Where that is not possible (a folder
// stick, FUSE, a host without /sys/bus/usb, no libusb access), the source does
// not start and the other signals watch alone.
import { readFileSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { sysfsBlockDevice } from './presence-io.ts';
import type { PresenceSource, SourceReport } from './presence-source.ts';

/** The USB device behind the stick: from sysfs (Linux: with its address), or as the host probe matched it. */
export interface UsbIdentity {
  vendorId: number;
  productId: number;
  busnum?: number;
  devnum?: number;
  serial?: string;
  /** The sysfs directory of the USB device (e.g. /sys/devices/…/usb2/2-1). */
  sysfsPath?: string;
}

/** The part of the `usb` package's native binding this module uses. */
export interface UsbDeviceInfo {
  vendorId: number;
  productId: number;
  address: number;
  bus: string;
  readonly handle: string;
  readonly serialNumber: string | null;
}

export interface UsbBinding {
  nativeGetDevices(): Promise<UsbDeviceInfo[]>;
  Emitter: new () => { addDetach(callback: (handle: string) => void): Promise<void>; removeDetach(): Promise<void> };
}

function readSysfs(dir: string, name: string): string | undefined {
  try {
    return readFileSync(join(dir, name), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Walks from a block device's sysfs node up to the USB device that carries it. */
export async function usbIdentityOfBlockDevice(blockDevice: string): Promise<UsbIdentity | undefined> {
  let dir = await realpath(blockDevice);
  while (dir !== dirname(dir)) {
    const busnum = readSysfs(dir, 'busnum');
    const devnum = readSysfs(dir, 'devnum');
    const vendor = readSysfs(dir, 'idVendor');
    const product = readSysfs(dir, 'idProduct');
    if (busnum && devnum && vendor && product) {
      const serial = readSysfs(dir, 'serial');
      return {
        vendorId: parseInt(vendor, 16),
        productId: parseInt(product, 16),
        busnum: Number(busnum),
        devnum: Number(devnum),
        ...(serial ? { serial } : {}),
        sysfsPath: dir,
      };
    }
    dir = dirname(dir);
  }
  return undefined;
}

/** The stick's USB device, where the stick is a USB mass-storage device and sysfs says so. */
export async function stickUsbIdentity(root: string, sysRoot = '/sys'): Promise<UsbIdentity | undefined> {
  const info = await stat(root, { bigint: true });
  const block = sysfsBlockDevice(info.dev, sysRoot);
  return block ? usbIdentityOfBlockDevice(block) : undefined;
}

export function matchesIdentity(device: UsbDeviceInfo, identity: UsbIdentity): boolean {
  if (device.vendorId !== identity.vendorId || device.productId !== identity.productId) return false;
  if (identity.devnum !== undefined && device.address !== identity.devnum) return false;
  if (identity.busnum !== undefined && /^\d+$/.test(device.bus) && Number(device.bus) !== identity.busnum) return false;
  return !identity.serial || !device.serialNumber || device.serialNumber === identity.serial;
}

async function loadUsb(): Promise<UsbBinding | undefined> {
  try {
    // The native binding itself (the package's index.js), not its WebUSB
    // wrapper: the wrapper rethrows hot-plug failures asynchronously, where
    // nothing can catch them.
    const module = (await import('usb/index.js')) as Partial<UsbBinding> & { default?: Partial<UsbBinding> };
    const binding = typeof module.nativeGetDevices === 'function' ? module : module.default;
    return binding && typeof binding.nativeGetDevices === 'function' && typeof binding.Emitter === 'function' ? (binding as UsbBinding) : undefined;
  } catch {
    return undefined;
  }
}

export function usbSource(
  root: string,
  options: { identity?: () => Promise<UsbIdentity | undefined>; binding?: () => Promise<UsbBinding | undefined>; known?: UsbIdentity } = {},
): PresenceSource {
  let emitter: InstanceType<UsbBinding['Emitter']> | undefined;
  let stopped = false;
  let report: SourceReport | undefined;

  return {
    name: 'usb',
    async start(r) {
      report = r;
      // sysfs knows the device's address; the host probe's match (vendor, product, serial) is the fallback.
      const identity = (await (options.identity ?? (() => stickUsbIdentity(root)))().catch(() => undefined)) ?? options.known;
      if (!identity) return false;
      const usb = await (options.binding ?? loadUsb)();
      if (!usb) return false;
      const devices = await usb.nativeGetDevices().catch(() => [] as UsbDeviceInfo[]);
      const matching = devices.filter((candidate) => matchesIdentity(candidate, identity));
      // Without an address, two identical sticks cannot be told apart: watch neither.
      if (matching.length !== 1 || stopped) return false;
      const device = matching[0]!;
      const handle = device.handle;
      const created = new usb.Emitter();
      try {
        await created.addDetach((detached) => {
          if (detached === handle && !stopped)
            report?.removed({
              signal: 'usb',
              detail: `the USB device ${identity.vendorId.toString(16).padStart(4, '0')}:${identity.productId.toString(16).padStart(4, '0')}${identity.devnum === undefined ? '' : ` (bus ${identity.busnum}, address ${identity.devnum})`} was detached`,
            });
        });
      } catch {
        return false;
      }
      emitter = created;
      if (stopped) void emitter.removeDetach().catch(() => {});
      return !stopped;
    },
    // A detach is not a guess: there is nothing to look at again.
    recheck() {},
    stop() {
      stopped = true;
      void emitter?.removeDetach().catch(() => {});
      emitter = undefined;
    },
  };
}
