// One description of a stick guest that every exporter writes from
// (docs/export.md, "The descriptor"): firmware, machine, CPUs and memory,
// disks and their buses, NICs with models and MACs, display, and what is
// known of the system inside. It is plain data, made from the guest's record
// (guests/<name>/guest.json) or, for a guest that has none, the payload of
// that name, and from the payload's manifest; the exporters map it onto a
// target through src/export/targets.ts.
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { ExportError } from '../errors.ts';
import { parseConfig, type GuestConfig } from '../guests/guest-config.ts';
import { guestPaths, readJson } from '../guests/guest-store.ts';
import { loadManifest } from '../payload/guest-manifest.ts';
import { networkCmdlineWord } from '../session/network-setting.ts';
import { ROOT_DISK_SERIAL, systemCmdline } from '../session/system-disk.ts';
import { type StickLayout } from '../stick/layout.ts';
import { USER_NETWORK_MAC } from '../vmm/qemu-args.ts';

export interface DescribedDisk {
  /** `system`: the guest's whole system (image guests); `extra`: an empty disk of the configuration. */
  role: 'system' | 'extra';
  name: string;
  /** What the disk is made from on the stick: the read-only base, and the user's overlay when exported. */
  base?: string;
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

export interface GuestDescriptor {
  name: string;
  /** The payload the guest boots (its kernel, initramfs and, for an image guest, base). */
  payload: string;
  kind: 'payload' | 'image';
  firmware: 'bios';
  machine: 'q35';
  cpus: number;
  memoryMiB: number;
  /** The kernel and initramfs are given to the machine (no bootloader on the disk). */
  boot: { kernel: string; initrd: string; cmdline: string };
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
  rootFileSystem?: { type: 'ext4'; uuid: string; label: string };
  init?: string;
  /** The guest's ready line on its serial console. */
  readyMarker: 'POCKETVM_READY';
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

/** The guest's committed configuration and the payload it boots: its record, else the payload of that name. */
async function guestConfig(layout: StickLayout, guest: string): Promise<{ payload: string; config?: GuestConfig }> {
  const paths = guestPaths(layout, guest);
  if (existsSync(paths.record)) {
    const record = (await readJson(paths.record)) as { source?: { kind?: string; name?: string }; config?: unknown };
    // A guest made from a catalog image (guest create --from) boots the image's
    // system on the payload's kernel in a chroot: what moves to another engine is
    // the image itself, with its own bootloader, which image adapt and deploy make.
    if (record.source?.kind === 'image') {
      const image = record.source.name ?? 'its image';
      throw new ExportError('exportSource', `${guest} is made from the catalog image ${image}: export takes guests made from payloads`, {
        hint: `launcher image adapt ${image} --for TARGET readies the image for the engine, launcher image deploy writes it to a disk file`,
        details: { reason: 'catalog-image', guest, image },
      });
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

export async function describeGuest(layout: StickLayout, guest: string): Promise<GuestDescriptor> {
  const { payload, config } = await guestConfig(layout, guest);
  const dir = join(layout.payloadRoot, payload);
  const manifest = await loadManifest(dir);
  const network = config?.network ?? manifest.devices.network;
  const words = [manifest.cmdline];
  const disks: DescribedDisk[] = [];
  let facts: GuestFacts = { os: 'linux', readyMarker: 'POCKETVM_READY' };
  if (manifest.image) {
    words.push(...systemCmdline(manifest.image));
    const base = join(dir, manifest.image.file);
    disks.push({ role: 'system', name: 'system', base, sizeBytes: manifest.image.bytes, bus: 'virtio-blk', serial: ROOT_DISK_SERIAL });
    const rootFileSystem = existsSync(base) ? await ext4Identity(base) : undefined;
    facts = { ...facts, init: manifest.image.init, ...(rootFileSystem ? { rootFileSystem } : {}) };
  }
  for (const extra of config?.disks ?? []) disks.push({ role: 'extra', name: extra.name, sizeBytes: extra.sizeMiB * 1024 * 1024, bus: 'virtio-blk' });
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
    boot: { kernel: join(dir, manifest.kernel), initrd: join(dir, manifest.initrd), cmdline: words.join(' ') },
    disks,
    nics: network === 'none' ? [] : [{ model: 'virtio-net', mac, network: 'user' }],
    display: config && config.display !== 'none' ? 'vga' : 'none',
    serialConsole: true,
    agentChannel: 'org.qemu.guest_agent.0',
    stickOnly: {
      shares: (config?.shares ?? []).map((share) => `${share.name} (${share.guestPath})`),
      devices: (config?.devices ?? []).filter((device) => device.kind !== 'serial').map((device) => `${device.name} (${device.kind})`),
    },
    facts,
  };
}
