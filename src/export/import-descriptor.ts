// What `launcher import` reads of an export (docs/import.md): the machine a
// descriptor describes — its name, firmware, memory, CPUs, NICs with their
// MACs and models, the disks' buses — and the disks it names, for the four
// forms `launcher export` writes and others' tools write too: an OVF (inside
// an OVA, or beside its disks), a libvirt domain XML, a QEMU command line
// (run.sh) and a Proxmox `qm` configuration. The readers are plain text →
// data (no XML library: the few elements needed are matched, entities
// decoded); what they read is recorded as facts with the image, never trusted
// to boot it (the stick boots every image on its own machine).
import { existsSync } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { ImportError } from '../errors.ts';

export type ImportKind = 'ova' | 'ovf' | 'libvirt' | 'qemu' | 'proxmox';

/** The machine as the descriptor says it; a field it does not say is left out. */
export interface MachineDescription {
  name?: string;
  firmware?: 'bios' | 'uefi';
  /** The machine type or hardware family: q35, pc-i440fx-…, vmx-14, virtualbox-2.2. */
  machine?: string;
  architecture?: string;
  memoryMiB?: number;
  cpus?: number;
  nics: Array<{ mac?: string; model?: string }>;
  /** Each disk's bus or controller as the descriptor says it (virtio, scsi, sata, ide, lsilogic, AHCI …). */
  diskBuses: string[];
}

export interface ReadExport {
  kind: ImportKind;
  /** The descriptor file read. */
  descriptor: string;
  machine: MachineDescription;
  /** Folder forms: the disk files it names, absolute, in its order (the first is the system). */
  disks: string[];
}

const bad = (message: string, reason: string, hint?: string) => new ImportError('importSource', message, { ...(hint ? { hint } : {}), details: { reason } });

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** XML text with its entities decoded (the five named ones and numeric ones). */
export function xmlText(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#\d+|\w+);/gi, (whole, entity: string) => {
    if (entity.startsWith('#x') || entity.startsWith('#X')) return String.fromCodePoint(parseInt(entity.slice(2), 16));
    if (entity.startsWith('#')) return String.fromCodePoint(parseInt(entity.slice(1), 10));
    return ENTITIES[entity] ?? whole;
  });
}

/** An attribute of an element's opening tag text (either quote), decoded. */
function attribute(tag: string, name: string): string | undefined {
  const found = new RegExp(`(?:^|\\s)${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)')`).exec(tag);
  return found ? xmlText(found[1] ?? found[2]!) : undefined;
}

/** The elements named `name` (any namespace prefix): their opening tag's attributes and their inner text. */
function elements(text: string, name: string): Array<{ attributes: string; inner: string }> {
  const found: Array<{ attributes: string; inner: string }> = [];
  const pattern = new RegExp(`<(?:[\\w-]+:)?${name}\\b([^>]*?)(/>|>([\\s\\S]*?)</(?:[\\w-]+:)?${name}\\s*>)`, 'g');
  for (const match of text.matchAll(pattern)) found.push({ attributes: match[1]!, inner: match[3] ?? '' });
  return found;
}

function innerOf(text: string, name: string): string | undefined {
  const first = elements(text, name)[0];
  return first === undefined ? undefined : xmlText(first.inner.trim());
}

function positive(value: string | undefined): number | undefined {
  const number = value === undefined ? NaN : Number(value.trim());
  return Number.isFinite(number) && number > 0 ? number : undefined;
}

function requireXml(text: string, root: string, file: string): void {
  if (!new RegExp(`<(?:[\\w-]+:)?${root}\\b`).test(text))
    throw bad(`${file} is not ${root === 'domain' ? 'a libvirt domain' : 'an OVF descriptor'}: no <${root}>`, 'bad-descriptor');
  const opened = (text.match(/<(?![?!/])[^>]*[^/]>|<(?![?!/])[^>]*>/g) ?? []).filter((tag) => !tag.endsWith('/>')).length;
  const closed = (text.match(/<\/[^>]+>/g) ?? []).length;
  if (opened !== closed) throw bad(`${file} is not well-formed XML (${opened} elements opened, ${closed} closed)`, 'bad-descriptor');
}

/** MiB from an OVF AllocationUnits (`byte * 2^20`, `MegaBytes`, `byte * 2^30`, `byte`) and a quantity. */
function ovfMiB(units: string | undefined, quantity: number): number {
  const unit = (units ?? 'byte * 2^20').replace(/\s+/g, '').toLowerCase();
  const power = /^byte\*2\^(\d+)$/.exec(unit);
  if (power) return Math.round((quantity * 2 ** Number(power[1])) / 2 ** 20);
  if (/^(gigabytes?|gb|gib)$/.test(unit)) return quantity * 1024;
  if (/^(kilobytes?|kb|kib)$/.test(unit)) return Math.round(quantity / 1024);
  if (unit === 'byte' || unit === 'bytes') return Math.round(quantity / 2 ** 20);
  return quantity;
}

/** An OVF 1.0/2.0 descriptor: the first VirtualSystem's hardware (VMware's, VirtualBox's, virt-v2v's, ours). */
export function readOvf(text: string, file = 'the OVF'): MachineDescription {
  requireXml(text, 'Envelope', file);
  const system = elements(text, 'VirtualSystem')[0];
  if (!system) throw bad(`${file} describes no VirtualSystem`, 'bad-descriptor');
  const machine: MachineDescription = { nics: [], diskBuses: [] };
  const name = innerOf(system.inner, 'Name') ?? attribute(system.attributes, 'ovf:id');
  if (name) machine.name = name;
  const family = innerOf(system.inner, 'VirtualSystemType');
  if (family) machine.machine = family;
  const controllers = new Map<string, string>();
  const items = [...elements(system.inner, 'Item'), ...elements(system.inner, 'StorageItem'), ...elements(system.inner, 'EthernetPortItem')];
  const disks: Array<{ parent?: string }> = [];
  for (const item of items) {
    const field = (key: string) => innerOf(item.inner, key);
    const type = Number(field('ResourceType'));
    const subtype = field('ResourceSubType');
    if (type === 3) {
      const cpus = positive(field('VirtualQuantity'));
      if (cpus) machine.cpus = cpus;
    } else if (type === 4) {
      const quantity = positive(field('VirtualQuantity'));
      if (quantity) machine.memoryMiB = ovfMiB(field('AllocationUnits'), quantity);
    } else if (type === 10) {
      const mac = field('Address');
      machine.nics.push({ ...(mac ? { mac: mac.toLowerCase() } : {}), ...(subtype ? { model: subtype } : {}) });
    } else if ([5, 6, 20].includes(type)) {
      const id = field('InstanceID');
      const bus = subtype ?? { 5: 'ide', 6: 'scsi', 20: 'sata' }[type]!;
      if (id) controllers.set(id, bus);
    } else if (type === 17) {
      const parent = field('Parent');
      disks.push(parent === undefined ? {} : { parent });
    }
  }
  machine.diskBuses = disks.map((disk) => (disk.parent !== undefined ? (controllers.get(disk.parent) ?? 'unknown') : 'unknown'));
  // VMware says EFI in a vmw:Config; VirtualBox in its vbox:Machine's <Firmware type="EFI"/>; OVF 2 in a BootOrder's firmware.
  const efi = /vmw:key\s*=\s*["']firmware["'][^>]*vmw:value\s*=\s*["']efi["']/i.test(text) || /<(?:\w+:)?Firmware\b[^>]*type\s*=\s*["']EFI/i.test(text);
  machine.firmware = efi ? 'uefi' : 'bios';
  return machine;
}

/** A libvirt domain XML: the machine and each `device='disk'`'s source file, in order. */
export function readLibvirtDomain(text: string, file = 'the domain XML'): { machine: MachineDescription; disks: string[] } {
  requireXml(text, 'domain', file);
  const machine: MachineDescription = { nics: [], diskBuses: [] };
  const name = innerOf(text, 'name');
  if (name) machine.name = name;
  const memory = elements(text, 'memory')[0];
  if (memory) {
    const amount = positive(xmlText(memory.inner));
    const unit = (attribute(memory.attributes, 'unit') ?? 'KiB').toLowerCase();
    const factor: Record<string, number> = {
      b: 2 ** -20,
      bytes: 2 ** -20,
      k: 1 / 1024,
      kib: 1 / 1024,
      kb: 1000 / 2 ** 20,
      m: 1,
      mib: 1,
      mb: 1e6 / 2 ** 20,
      g: 1024,
      gib: 1024,
      gb: 1e9 / 2 ** 20,
    };
    if (amount && factor[unit] !== undefined) machine.memoryMiB = Math.round(amount * factor[unit]);
  }
  const cpus = positive(innerOf(text, 'vcpu'));
  if (cpus) machine.cpus = cpus;
  const os = elements(text, 'os')[0];
  if (os) {
    const type = elements(os.inner, 'type')[0];
    const arch = type ? attribute(type.attributes, 'arch') : undefined;
    const kind = type ? attribute(type.attributes, 'machine') : undefined;
    if (arch) machine.architecture = arch;
    if (kind) machine.machine = kind;
    machine.firmware = attribute(os.attributes, 'firmware') === 'efi' || elements(os.inner, 'loader').length > 0 ? 'uefi' : 'bios';
  }
  const disks: string[] = [];
  for (const disk of elements(text, 'disk')) {
    if ((attribute(disk.attributes, 'device') ?? 'disk') !== 'disk') continue;
    const source = elements(disk.inner, 'source')[0];
    const path = source ? (attribute(source.attributes, 'file') ?? attribute(source.attributes, 'dev')) : undefined;
    if (!path) continue;
    disks.push(path);
    const target = elements(disk.inner, 'target')[0];
    machine.diskBuses.push((target && attribute(target.attributes, 'bus')) ?? 'unknown');
  }
  for (const nic of elements(text, 'interface')) {
    const mac = elements(nic.inner, 'mac')[0];
    const model = elements(nic.inner, 'model')[0];
    const address = mac ? attribute(mac.attributes, 'address') : undefined;
    const type = model ? attribute(model.attributes, 'type') : undefined;
    machine.nics.push({ ...(address ? { mac: address.toLowerCase() } : {}), ...(type ? { model: type } : {}) });
  }
  return { machine, disks };
}

/** A shell word list of a QEMU command line (single and double quotes, backslash-newline joins; `"$here"/` kept as text). */
function shellWords(script: string): string[] {
  const joined = script.replace(/\\\n/g, ' ');
  const words: string[] = [];
  for (const line of joined.split('\n')) {
    if (/^\s*#/.test(line)) continue;
    let word = '';
    let inWord = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i]!;
      if (c === '\\') {
        word += line[i + 1] ?? '';
        i++;
        inWord = true;
      } else if (c === "'") {
        const end = line.indexOf("'", i + 1);
        word += line.slice(i + 1, end < 0 ? undefined : end);
        i = end < 0 ? line.length : end;
        inWord = true;
      } else if (c === '"') {
        const end = line.indexOf('"', i + 1);
        word += line.slice(i + 1, end < 0 ? undefined : end);
        i = end < 0 ? line.length : end;
        inWord = true;
      } else if (/\s/.test(c)) {
        if (inWord) words.push(word);
        word = '';
        inWord = false;
      } else {
        word += c;
        inWord = true;
      }
    }
    if (inWord) words.push(word);
  }
  return words;
}

/** -device models that are network cards. */
const NIC_DEVICE = /net|e1000|rtl8139|vmxnet/;

/** A QEMU command line (a run.sh as `launcher export --to qemu` writes, or any script running qemu-system-x86_64). */
export function readQemuScript(script: string, file = 'the script'): { machine: MachineDescription; disks: string[] } {
  const words = shellWords(script);
  const start = words.findIndex((word) => /qemu-system-|\$\{QEMU|^qemu-kvm$/.test(word));
  if (start < 0) throw bad(`${file} runs no qemu-system command`, 'bad-descriptor');
  const system = /qemu-system-([\w]+)/.exec(words[start]!)?.[1];
  const args = words.slice(start + 1);
  const machine: MachineDescription = { nics: [], diskBuses: [], ...(system ? { architecture: system } : {}) };
  const disks: string[] = [];
  const options = (value: string) => new Map(value.split(',').map((part) => [part.split('=')[0]!, part.slice(part.indexOf('=') + 1)] as const));
  const here = (path: string) => path.replace(/^\$here\/|^\$\{here\}\//, '');
  for (let i = 0; i < args.length; i++) {
    const flag = args[i]!;
    const value = args[i + 1] ?? '';
    switch (flag) {
      case '-name':
        machine.name = value.split(',')[0]!.replace(/^guest=/, '');
        break;
      case '-m': {
        const size = /^(?:size=)?(\d+)([MG]?)/i.exec(value);
        if (size) machine.memoryMiB = Number(size[1]) * (size[2]?.toUpperCase() === 'G' ? 1024 : 1);
        break;
      }
      case '-smp': {
        const cpus = positive(/^(?:cpus=)?(\d+)/.exec(value)?.[1]);
        if (cpus) machine.cpus = cpus;
        break;
      }
      case '-machine':
      case '-M':
        machine.machine = value.split(',')[0]!.replace(/^type=/, '');
        break;
      case '-bios':
        if (/ovmf|efi/i.test(value)) machine.firmware = 'uefi';
        break;
      case '-blockdev': {
        const filename = options(value).get('file.filename') ?? options(value).get('filename');
        if (filename && !/^(file|raw|qcow2)$/.test(filename)) disks.push(here(filename));
        break;
      }
      case '-drive': {
        const drive = options(value);
        const path = drive.get('file');
        if (path === undefined) break;
        if (drive.get('if') === 'pflash') machine.firmware = 'uefi';
        else if (drive.get('media') !== 'cdrom') {
          disks.push(here(path));
          machine.diskBuses.push(drive.get('if') ?? 'ide');
        }
        break;
      }
      case '-hda':
      case '-hdb':
        disks.push(here(value));
        machine.diskBuses.push('ide');
        break;
      case '-nic':
      case '-net':
      case '-device': {
        const parts = options(value);
        const model = (flag === '-device' ? value.split(',')[0] : parts.get('model')) ?? '';
        if (flag === '-device') {
          if (model.startsWith('virtio-blk')) machine.diskBuses.push('virtio');
          else if (model === 'scsi-hd' || model === 'ide-hd') machine.diskBuses.push(model.slice(0, -3));
          if (!NIC_DEVICE.test(model)) break;
        } else if (flag === '-net' && !value.startsWith('nic')) break;
        const mac = parts.get('mac');
        machine.nics.push({ ...(mac ? { mac: mac.toLowerCase() } : {}), ...(model ? { model } : {}) });
        break;
      }
      default:
    }
  }
  machine.firmware ??= 'bios';
  return { machine, disks };
}

/** A Proxmox VE guest configuration (`qm config` / /etc/pve/qemu-server/VMID.conf) and the disks an import.sh beside it imports. */
export function readProxmoxConfig(
  conf: string,
  importScript: string | undefined,
  file = 'the configuration',
): { machine: MachineDescription; disks: string[] } {
  const settings = new Map<string, string>();
  for (const line of conf.split('\n')) {
    if (/^\s*(#|$)/.test(line)) continue;
    if (/^\[/.test(line)) break; // a snapshot section: the current configuration is above it
    const found = /^([\w-]+):\s*(.*)$/.exec(line.trim());
    if (!found) throw bad(`${file}: "${line.trim().slice(0, 60)}" is not a "key: value" line`, 'bad-descriptor');
    settings.set(found[1]!, found[2]!);
  }
  if (!settings.has('memory') && !settings.has('cores') && ![...settings.keys()].some((key) => /^(virtio|scsi|sata|ide)\d+$/.test(key)))
    throw bad(`${file} is not a Proxmox guest configuration (no memory, cores or disk)`, 'bad-descriptor');
  const machine: MachineDescription = { nics: [], diskBuses: [] };
  const name = settings.get('name');
  if (name) machine.name = name;
  const memory = positive(settings.get('memory'));
  if (memory) machine.memoryMiB = memory;
  const cores = positive(settings.get('cores')) ?? 1;
  const sockets = positive(settings.get('sockets')) ?? 1;
  if (settings.has('cores') || settings.has('sockets')) machine.cpus = cores * sockets;
  machine.firmware = settings.get('bios') === 'ovmf' ? 'uefi' : 'bios';
  const kind = settings.get('machine');
  if (kind) machine.machine = kind;
  const arch = settings.get('arch');
  if (arch) machine.architecture = arch === 'aarch64' ? 'aarch64' : 'x86_64';
  const keys = [...settings.keys()].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  for (const key of keys.filter((k) => /^net\d+$/.test(k))) {
    const [model, mac] = settings.get(key)!.split(',')[0]!.split('=');
    machine.nics.push({ ...(mac ? { mac: mac.toLowerCase() } : {}), ...(model ? { model } : {}) });
  }
  const diskKeys = keys.filter((k) => /^(virtio|scsi|sata|ide)\d+$/.test(k) && !/media=cdrom/.test(settings.get(k)!));
  machine.diskBuses = diskKeys.map((key) => /^[a-z]+/.exec(key)![0]);
  const disks: string[] = [];
  // import.sh (ours): `import-from=$here/FILE`; else a disk whose volume is a path (`virtio0: /x/y.qcow2`).
  for (const match of (importScript ?? '').matchAll(/import-from=\$here\/([^,"'\s]+)/g)) disks.push(match[1]!);
  if (disks.length === 0)
    for (const key of diskKeys) {
      const volume = settings.get(key)!.split(',')[0]!;
      if (volume.startsWith('/') || /\.(qcow2|vmdk|raw|img|vdi|vhdx?)$/.test(volume)) disks.push(volume);
    }
  return { machine, disks };
}

function unsupported(machine: MachineDescription, file: string): void {
  const arch = machine.architecture;
  if (arch !== undefined && !/^(x86_64|amd64|i[3-6]86)$/.test(arch))
    throw bad(`${file} describes a ${arch} machine; the stick runs x86_64 guests only`, 'unsupported');
}

/** A disk the descriptor names, resolved in the export's folder (an absolute path elsewhere: the same file name in the folder, as a moved export has it). */
function diskIn(folder: string, named: string): string {
  const inside = isAbsolute(named) ? named : resolve(folder, named);
  const within = !relative(folder, inside).startsWith('..');
  if (within && existsSync(inside)) return inside;
  const moved = join(folder, basename(named));
  if (existsSync(moved)) return moved;
  if (!within && existsSync(inside))
    throw new ImportError('importDisk', `${named}, a disk the descriptor names, is outside ${folder}`, {
      hint: 'copy the disk into the export folder',
      details: { reason: 'outside', disk: named },
    });
  throw new ImportError('importDisk', `${named}, a disk the descriptor names, is not in ${folder}`, { details: { reason: 'missing-disk', disk: named } });
}

async function textOf(path: string): Promise<string> {
  const info = await stat(path);
  if (info.size > 4 << 20) throw bad(`${path} is ${info.size} bytes: too big for a descriptor`, 'bad-descriptor');
  return readFile(path, 'utf8');
}

/** The descriptor of a folder export: a domain XML, a run.sh, or a Proxmox .conf. */
async function folderDescriptor(folder: string): Promise<{ kind: 'libvirt' | 'qemu' | 'proxmox' | 'ovf'; file: string }> {
  const files = (await readdir(folder)).sort();
  for (const file of files.filter((f) => f.endsWith('.xml')))
    if (/<domain\b/.test(await textOf(join(folder, file)))) return { kind: 'libvirt', file: join(folder, file) };
  const ovf = files.find((f) => f.toLowerCase().endsWith('.ovf'));
  if (ovf) return { kind: 'ovf', file: join(folder, ovf) };
  if (files.includes('run.sh')) return { kind: 'qemu', file: join(folder, 'run.sh') };
  const conf = files.find((f) => f.endsWith('.conf'));
  if (conf) return { kind: 'proxmox', file: join(folder, conf) };
  throw bad(
    `${folder} holds no export pocketvm reads (a libvirt domain .xml, an .ovf, a QEMU run.sh or a Proxmox .conf)`,
    'no-descriptor',
    'give an .ova file or the folder launcher export (or virsh dumpxml, qm config) wrote',
  );
}

function kindOfFile(path: string, head: Buffer): ImportKind | undefined {
  if (head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar') return 'ova';
  const text = head.toString('utf8');
  if (/<(?:\w+:)?Envelope\b/.test(text)) return 'ovf';
  if (/<domain\b/.test(text)) return 'libvirt';
  if (/qemu-system-|^#!.*sh/m.test(text) && basename(path) !== 'import.sh') return 'qemu';
  if (path.endsWith('.conf')) return 'proxmox';
  return undefined;
}

/**
 * Reads SOURCE (an .ova file, an export folder, or a descriptor file in one):
 * what it describes and, for the folder forms, the disks it names (checked to
 * exist). An OVA's disks are read by the image import itself (src/images/ova.ts).
 */
export async function readExport(source: string): Promise<ReadExport> {
  const path = resolve(source);
  const info = await stat(path).catch(() => undefined);
  if (!info) throw bad(`${source} does not exist`, 'no-source');
  let kind: ImportKind;
  let file: string;
  if (info.isDirectory()) ({ kind, file } = await folderDescriptor(path));
  else {
    const head = Buffer.alloc(4096);
    const handle = await open(path, 'r');
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    await handle.close();
    const found = kindOfFile(path, head.subarray(0, bytesRead));
    if (!found)
      throw bad(
        `${source} is not an export pocketvm reads (an OVA, an OVF, a libvirt domain XML, a QEMU run.sh or a Proxmox .conf)`,
        'no-descriptor',
        'a single disk image goes in with launcher image import',
      );
    kind = found;
    file = path;
  }
  const folder = dirname(file);
  if (kind === 'ova') {
    const { readOva } = await import('../images/ova.ts');
    const ova = await readOva(file);
    const machine = readOvf(ova.ovfText, `${source} (${ova.ovf})`);
    unsupported(machine, file);
    return { kind, descriptor: file, machine, disks: [] };
  }
  const text = await textOf(file);
  let read: { machine: MachineDescription; disks: string[] };
  if (kind === 'ovf') {
    const { ovfDiskFiles } = await import('../images/ova.ts');
    read = { machine: readOvf(text, file), disks: ovfDiskFiles(text) };
  } else if (kind === 'libvirt') read = readLibvirtDomain(text, file);
  else if (kind === 'qemu') read = readQemuScript(text, file);
  else {
    const script = join(folder, 'import.sh');
    read = readProxmoxConfig(text, existsSync(script) ? await textOf(script) : undefined, file);
  }
  unsupported(read.machine, file);
  if (read.disks.length === 0) throw bad(`${file} names no disk`, 'bad-descriptor');
  return { kind, descriptor: file, machine: read.machine, disks: read.disks.map((disk) => diskIn(folder, disk)) };
}
