// One description of a stick guest that every exporter writes from
// (docs/export.md, "The descriptor"): firmware, machine, CPUs and memory,
// disks and their buses, NICs with models and MACs, display, and what is
// known of the system inside. It is plain data, made from the guest's record
// (guests/<name>/guest.json) or, for a guest that has none, the payload of
// that name, and from the payload's manifest; a guest made from a catalog
// image (guest create --from) from its image's catalog row instead
// (./catalog-image-guest.ts). The exporters map it onto a target through
// src/export/targets.ts.
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { ExportError } from '../errors.ts';
import { parseConfig, type GuestConfig } from '../guests/guest-config.ts';
import { guestPaths, readJson } from '../guests/guest-store.ts';
import { loadManifest } from '../payload/guest-manifest.ts';
import { networkCmdlineWord } from '../session/network-setting.ts';
import { ROOT_DISK_SERIAL, systemCmdline } from '../session/system-disk.ts';
import type { ImageFacts } from '../images/inspect-report.ts';
import { type StickLayout } from '../stick/layout.ts';
import { USER_NETWORK_MAC } from '../vmm/qemu-args.ts';
import { guestImage, IMAGE_GUEST_PAYLOAD } from '../guests/image-source.ts';
import { type DiskBoot, diskBootOf, type GuestDrives, drivesOf } from './catalog-image-guest.ts';

export interface DescribedDisk {
  /** `system`: the guest's whole system (image guests); `extra`: an empty disk of the configuration. */
  role: 'system' | 'extra';
  name: string;
  /** What the disk is made from on the stick: the read-only base, and the user's overlay when exported. */
  base?: string;
  /** The base's format: a payload's base is raw, a catalog image's store file qcow2. */
  baseFormat?: 'raw' | 'qcow2';
  sizeBytes: number;
  /** The bus the guest has it on under the stick's QEMU. */
  bus: 'virtio-blk';
  /** The virtio serial the guest's initramfs finds it by. */
  serial?: string;
}

export interface DescribedNic {
  model: 'virtio-net';
  mac: string;
  /** user: QEMU's user-mode network on the stick (NAT to what the host reaches). */
  network: 'user';
}

/** The kernel and initramfs are given to the machine (no bootloader on the disk): a payload's guests. */
interface KernelBoot {
  from: 'kernel';
  kernel: string;
  initrd: string;
  cmdline: string;
}

export interface GuestDescriptor {
  name: string;
  /** The payload the guest boots on the stick (its kernel, initramfs and, for an image guest, base). */
  payload: string;
  /** payload: no disk of its own; image: a payload's base under the users' overlays; catalog-image: guest create --from IMAGE. */
  kind: 'payload' | 'image' | 'catalog-image';
  firmware: 'bios' | 'uefi';
  machine: 'q35';
  cpus: number;
  memoryMiB: number;
  boot: KernelBoot | DiskBoot;
  disks: DescribedDisk[];
  nics: DescribedNic[];
  display: 'none' | 'vga';
  serialConsole: true;
  /** The qemu-guest-agent port the guest says it is ready on. */
  agentChannel: 'org.qemu.guest_agent.0';
  /** Launcher-served parts the guest uses on the stick that no engine carries. */
  stickOnly: { shares: string[]; devices: string[] };
  /** What is known of the system inside without opening it: the system disk's file system, its init. */
  facts: GuestFacts;
}

export interface GuestFacts {
  os: 'linux';
  rootFileSystem?: { type: string; uuid: string; label: string };
  init?: string;
  /** The guest's ready line on its serial console (the payload's init prints it; a catalog image's own init does not). */
  readyMarker?: 'POCKETVM_READY';
  /** A catalog-image guest's image: its catalog name and content hash, and its distribution as inspect named it. */
  image?: { name: string; sha256: string; distribution: string | null };
  /**
   * The disk bus and NIC model the system's own initramfs is known to drive
   * beyond the emulated SATA and e1000 every Linux drives: recorded by the
   * `image adapt` that made the image (null: nothing is known beyond those).
   * Absent for a payload's guests, which boot the payload's initramfs.
   */
  drives?: GuestDrives;
}

/** What the guest is made from, as the exported files' comments say it: "payload NAME" or "image NAME". */
export function sourceOf(descriptor: GuestDescriptor): string {
  return descriptor.facts.image ? `image ${descriptor.facts.image.name}` : `payload ${descriptor.payload}`;
}

/** An ext4 superblock's UUID and label (offset 1024): the system's identity without opening it. */
export async function ext4Identity(path: string): Promise<{ type: 'ext4'; uuid: string; label: string } | undefined> {
  const handle = await open(path, 'r');
  try {
    const block = Buffer.alloc(1024);
    await handle.read(block, 0, 1024, 1024);
    if (block.readUInt16LE(0x38) !== 0xef53) return undefined;
    const hex = block.subarray(0x68, 0x78).toString('hex');
    const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    const label = block.subarray(0x78, 0x88).toString('latin1').replace(/\0.*$/s, '');
    return { type: 'ext4', uuid, label };
  } finally {
    await handle.close();
  }
}

type GuestSource = { payload: string; config?: GuestConfig } | { image: string; config: GuestConfig };

/** The guest's committed configuration and what it is made from: its record (a payload or a catalog image), else the payload of that name. */
async function guestConfig(layout: StickLayout, guest: string): Promise<GuestSource> {
  const paths = guestPaths(layout, guest);
  if (existsSync(paths.record)) {
    const record = (await readJson(paths.record)) as { source?: { kind?: string; name?: string; sha256?: string }; config?: unknown };
    if (record.source?.kind === 'image') {
      const sha256 = record.source.sha256;
      if (typeof sha256 !== 'string') throw new ExportError('exportSource', `${paths.record} names no image`, { details: { reason: 'bad-record' } });
      return { image: sha256, config: parseConfig(record.config, paths.record) };
    }
    const payload = record.source?.name;
    if (typeof payload !== 'string') throw new ExportError('exportSource', `${paths.record} names no payload`, { details: { reason: 'bad-record' } });
    return { payload, config: parseConfig(record.config, paths.record) };
  }
  if (existsSync(join(layout.payloadRoot, guest, 'guest.json'))) return { payload: guest };
  throw new ExportError('exportSource', `there is no guest named ${guest} on ${layout.root}`, {
    hint: 'launcher guest list shows the guests',
    details: { reason: 'no-guest', guest },
  });
}

/** What only the launcher serves the guest on the stick: its shared folders and devices (a serial port every target has). */
function stickOnlyOf(config: GuestConfig | undefined): GuestDescriptor['stickOnly'] {
  return {
    shares: (config?.shares ?? []).map((share) => `${share.name} (${share.guestPath})`),
    devices: (config?.devices ?? []).filter((device) => device.kind !== 'serial').map((device) => `${device.name} (${device.kind})`),
  };
}

/** The configuration's extra disks: empty, as the stick makes them at install. */
function extraDisks(config: GuestConfig | undefined): DescribedDisk[] {
  return (config?.disks ?? []).map((extra) => ({ role: 'extra', name: extra.name, sizeBytes: extra.sizeMiB * 1024 * 1024, bus: 'virtio-blk' }));
}

/**
 * A guest made from a catalog image (guest create --from): on the stick its
 * system boots on the default payload's kernel in the image's root; off it,
 * from the image's own bootloader, with the firmware and devices its facts
 * and lineage say it can use. Its system disk is the image's store file.
 */
async function describeCatalogImageGuest(layout: StickLayout, guest: string, sha256: string, config: GuestConfig): Promise<GuestDescriptor> {
  const system = guestImage(layout, sha256, guest);
  const { firmware, boot } = diskBootOf(system.image, guest);
  const manifest = await loadManifest(join(layout.payloadRoot, IMAGE_GUEST_PAYLOAD));
  const facts = system.image.facts as unknown as ImageFacts;
  const root = facts.fileSystems.find((fs) => fs.mountpoint === '/');
  return {
    name: guest,
    payload: IMAGE_GUEST_PAYLOAD,
    kind: 'catalog-image',
    firmware,
    machine: 'q35',
    cpus: config.cpus ?? manifest.cpus.recommended,
    memoryMiB: config.memoryMiB ?? manifest.memory.recommendedMiB,
    boot,
    disks: [
      // No serial: off the stick its own bootloader and fstab find the system, not the payload's initramfs.
      { role: 'system', name: 'system', base: system.file, baseFormat: 'qcow2', sizeBytes: system.image.virtualBytes, bus: 'virtio-blk' },
      ...extraDisks(config),
    ],
    nics: config.network === 'none' ? [] : [{ model: 'virtio-net', mac: config.mac ?? USER_NETWORK_MAC, network: 'user' }],
    display: config.display !== 'none' ? 'vga' : 'none',
    serialConsole: true,
    agentChannel: 'org.qemu.guest_agent.0',
    stickOnly: stickOnlyOf(config),
    facts: {
      os: 'linux',
      ...(root?.type && root.uuid ? { rootFileSystem: { type: root.type, uuid: root.uuid, label: root.label ?? '' } } : {}),
      image: { name: system.image.name, sha256: system.image.sha256, distribution: facts.os.distribution },
      drives: drivesOf(layout, system.image),
    },
  };
}

export async function describeGuest(layout: StickLayout, guest: string): Promise<GuestDescriptor> {
  const source = await guestConfig(layout, guest);
  if ('image' in source) return describeCatalogImageGuest(layout, guest, source.image, source.config);
  const { payload, config } = source;
  const dir = join(layout.payloadRoot, payload);
  const manifest = await loadManifest(dir);
  const network = config?.network ?? manifest.devices.network;
  const words = [manifest.cmdline];
  const disks: DescribedDisk[] = [];
  let facts: GuestFacts = { os: 'linux', readyMarker: 'POCKETVM_READY' };
  if (manifest.image) {
    words.push(...systemCmdline(manifest.image));
    const base = join(dir, manifest.image.file);
    disks.push({ role: 'system', name: 'system', base, baseFormat: 'raw', sizeBytes: manifest.image.bytes, bus: 'virtio-blk', serial: ROOT_DISK_SERIAL });
    const rootFileSystem = existsSync(base) ? await ext4Identity(base) : undefined;
    facts = { ...facts, init: manifest.image.init, ...(rootFileSystem ? { rootFileSystem } : {}) };
  }
  disks.push(...extraDisks(config));
  const mac = config?.mac ?? USER_NETWORK_MAC;
  if (network !== 'none') words.push(networkCmdlineWord(mac));
  return {
    name: guest,
    payload,
    kind: manifest.image ? 'image' : 'payload',
    firmware: 'bios',
    machine: 'q35',
    cpus: config?.cpus ?? manifest.cpus.recommended,
    memoryMiB: config?.memoryMiB ?? manifest.memory.recommendedMiB,
    boot: { from: 'kernel', kernel: join(dir, manifest.kernel), initrd: join(dir, manifest.initrd), cmdline: words.join(' ') },
    disks,
    nics: network === 'none' ? [] : [{ model: 'virtio-net', mac, network: 'user' }],
    display: config && config.display !== 'none' ? 'vga' : 'none',
    serialConsole: true,
    agentChannel: 'org.qemu.guest_agent.0',
    stickOnly: stickOnlyOf(config),
    facts,
  };
}
