// A guest's platform (seed 003's virtual platform layer): memory, CPUs, disks,
// network, shared folders with their table rules, devices, display. Changes
// are staged one at a time (`set`, `add`, `remove`), checked together by
// `verifyConfig`, which names every problem rather than the first, and
// committed whole (guest-lifecycle.ts).
import { isAbsolute, posix } from 'node:path';
import { z } from 'zod';
import { GuestConfigError } from '../errors.ts';
import { NAMESPACE_MAC } from '../session/namespace-channel.ts';

const resourceName = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, . _ -, at most 64');

/**
 * A guest path under /host and where it comes from: one dynamic-table rule
 * (src/dyntable/rules.ts). FIT: from the stick; FET: from the host folder
 * `hostPath`, copy-on-write or read-only.
 */
const share = z.strictObject({
  name: resourceName,
  table: z.enum(['FIT', 'FET']),
  guestPath: z.string().min(1).max(1024),
  hostPath: z.string().min(1).max(1024).optional(),
  mode: z.enum(['cow', 'readonly']).optional(),
});

/** An extra empty disk for the guest, made at install. */
const disk = z.strictObject({
  name: resourceName,
  sizeMiB: z
    .int()
    .min(1)
    .max(4 * 1024 * 1024),
});

export const DEVICE_KINDS = ['rng', 'tablet', 'serial'] as const;
const device = z.strictObject({ name: resourceName, kind: z.enum(DEVICE_KINDS) });

/**
 * A network card's address as a guest may have one: six octets, lower case,
 * colon-separated, unicast (the first octet's low bit clear: a multicast
 * source address is dropped by every switch) and not all zero. Locally (bit 1
 * set, QEMU's 52:54:00:…) and globally administered addresses are both taken:
 * an imported machine keeps the one its descriptor gave it.
 */
export function macProblem(mac: string): string | undefined {
  if (!/^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/.test(mac)) return `${mac} is not a MAC address (six hex octets joined by colons, lower case)`;
  if (parseInt(mac.slice(0, 2), 16) & 1) return `${mac} is a multicast address; a network card needs a unicast one (first octet even)`;
  if (mac === '00:00:00:00:00:00') return `${mac} is the all-zero address, which no card may have`;
  // The guest's boot steps find each card by its address: two cards with one would be taken for each other.
  if (mac === NAMESPACE_MAC) return `${mac} is the 9P namespace card's address`;
  return undefined;
}

/** A MAC as people and descriptors write it (either case, colons or dashes) in the form the configuration holds; macProblem checks it. */
export const normalMac = (text: string): string => text.trim().toLowerCase().replaceAll('-', ':');

const macAddress = z.string().superRefine((mac, context) => {
  const problem = macProblem(mac);
  if (problem) context.addIssue({ code: 'custom', message: problem });
});

/** The most memory and CPUs a guest's configuration may say (1 TiB, 256). */
export const MAX_MEMORY_MIB = 1 << 20;
export const MAX_CPUS = 256;

export const GuestConfigSchema = z.strictObject({
  /** Absent: sized from the host at each launch (src/session/sizing.ts). */
  memoryMiB: z.int().min(1).max(MAX_MEMORY_MIB).optional(),
  cpus: z.int().min(1).max(MAX_CPUS).optional(),
  network: z.enum(['none', 'user']),
  /** The user-mode card's MAC; absent: USER_NETWORK_MAC (src/vmm/qemu-args.ts). */
  mac: macAddress.optional(),
  display: z.enum(['none', 'window', 'page']),
  shares: z.array(share).max(64),
  disks: z.array(disk).max(16),
  devices: z.array(device).max(16),
});

export type GuestConfig = z.infer<typeof GuestConfigSchema>;
export type ResourceKind = 'share' | 'disk' | 'device';

/** What the source (payload or image) says the guest needs at least; verify checks against it. */
export interface SourceNeeds {
  minimumMiB: number;
  minimumCpus: number;
}

export const SETTABLE = ['memory', 'cpus', 'network', 'mac', 'display'] as const;
type Settable = (typeof SETTABLE)[number];

function refused(message: string, hint: string): GuestConfigError {
  return new GuestConfigError(`${message}; nothing was staged`, { hint, details: { reason: 'input' } });
}

function positiveInt(text: string, what: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1)
    throw refused(`${what} must be a whole number of at least 1, not "${text}"`, `e.g. guest config NAME set ${what} 2`);
  return Number(text);
}

/** `set PROPERTY VALUE` applied to `config`; `auto` clears memory or cpus (sized from the host) or mac (the stick's default address). */
export function setProperty(config: GuestConfig, property: string, value: string): GuestConfig {
  if (!(SETTABLE as readonly string[]).includes(property))
    throw refused(`"${property}" is not a property of a guest`, `the properties are ${SETTABLE.join(', ')}; shares, disks and devices are added and removed`);
  const next = structuredClone(config);
  switch (property as Settable) {
    case 'memory':
      if (value === 'auto') delete next.memoryMiB;
      else next.memoryMiB = positiveInt(value, 'memory');
      break;
    case 'cpus':
      if (value === 'auto') delete next.cpus;
      else next.cpus = positiveInt(value, 'cpus');
      break;
    case 'network':
      if (value !== 'none' && value !== 'user') throw refused(`network is none or user, not "${value}"`, 'guest config NAME set network user');
      next.network = value;
      break;
    case 'mac': {
      if (value === 'auto') {
        delete next.mac;
        break;
      }
      const mac = normalMac(value);
      const problem = macProblem(mac);
      if (problem) throw refused(problem, 'e.g. guest config NAME set mac 52:54:00:12:34:57, or auto for the default');
      next.mac = mac;
      break;
    }
    case 'display':
      if (value !== 'none' && value !== 'window' && value !== 'page')
        throw refused(`display is none, window or page, not "${value}"`, 'guest config NAME set display none');
      next.display = value;
      break;
  }
  return next;
}

export interface AddArguments {
  kind: string;
  name: string;
  args: string[];
  table?: string;
  mode?: string;
}

/**
 * `add share NAME GUESTPATH [HOSTPATH]`, `add disk NAME SIZE_MIB`, `add device
 * NAME KIND`. Shape is checked here (a name taken, a missing argument); what
 * depends on the whole configuration is verify's.
 */
export function addResource(config: GuestConfig, add: AddArguments): GuestConfig {
  const next = structuredClone(config);
  const taken = (list: Array<{ name: string }>) => {
    if (list.some((item) => item.name === add.name))
      throw refused(`the guest already has a ${add.kind} named ${add.name}`, `remove it first: guest config NAME remove ${add.kind} ${add.name}`);
  };
  if (!resourceName.safeParse(add.name).success) throw refused(`"${add.name}" is not a ${add.kind} name`, 'names are letters, digits, . _ -, at most 64');
  switch (add.kind) {
    case 'share': {
      const [guestPath, hostPath] = add.args;
      if (!guestPath || add.args.length > 2)
        throw refused('add share takes NAME GUESTPATH [HOSTPATH]', 'e.g. guest config NAME add share docs /host/docs ~/Documents');
      const table = add.table ?? (hostPath === undefined ? 'FIT' : 'FET');
      const mode = add.mode ?? (table === 'FET' ? 'cow' : undefined);
      if (table !== 'FIT' && table !== 'FET')
        throw refused(`--table is FIT or FET, not "${table}"`, 'FIT: the path comes from the stick; FET: from a host folder');
      if (mode !== undefined && mode !== 'cow' && mode !== 'readonly')
        throw refused(`--mode is cow or readonly, not "${mode}"`, 'cow: the guest writes to the stick, never the host');
      taken(next.shares);
      next.shares.push({ name: add.name, table, guestPath, ...(hostPath === undefined ? {} : { hostPath }), ...(mode === undefined ? {} : { mode }) });
      break;
    }
    case 'disk': {
      const [size] = add.args;
      if (!size || add.args.length > 1) throw refused('add disk takes NAME SIZE_MIB', 'e.g. guest config NAME add disk scratch 512');
      taken(next.disks);
      next.disks.push({ name: add.name, sizeMiB: positiveInt(size, 'the disk size') });
      break;
    }
    case 'device': {
      const [kind] = add.args;
      if (!kind || add.args.length > 1) throw refused('add device takes NAME KIND', `KIND is one of ${DEVICE_KINDS.join(', ')}`);
      if (!(DEVICE_KINDS as readonly string[]).includes(kind)) throw refused(`"${kind}" is not a device kind`, `KIND is one of ${DEVICE_KINDS.join(', ')}`);
      taken(next.devices);
      next.devices.push({ name: add.name, kind: kind as (typeof DEVICE_KINDS)[number] });
      break;
    }
    default:
      throw refused(`"${add.kind}" is not something a guest has`, 'add share, disk or device');
  }
  return next;
}

/** `remove share|disk|device NAME`. */
export function removeResource(config: GuestConfig, kind: string, name: string): GuestConfig {
  const lists: Record<ResourceKind, Array<{ name: string }>> = { share: config.shares, disk: config.disks, device: config.devices };
  if (!(kind in lists)) throw refused(`"${kind}" is not something a guest has`, 'remove share, disk or device');
  if (!lists[kind as ResourceKind].some((item) => item.name === name))
    throw refused(`the guest has no ${kind} named ${name}`, 'guest config NAME show lists what it has');
  const next = structuredClone(config);
  if (kind === 'share') next.shares = next.shares.filter((item) => item.name !== name);
  if (kind === 'disk') next.disks = next.disks.filter((item) => item.name !== name);
  if (kind === 'device') next.devices = next.devices.filter((item) => item.name !== name);
  return next;
}

/** Every problem of `config`, one line each; empty when it can be committed. */
export function verifyConfig(config: unknown, needs: SourceNeeds): string[] {
  const parsed = GuestConfigSchema.safeParse(config);
  if (!parsed.success) return parsed.error.issues.map((issue) => `${issue.path.join('.') || '(top level)'}: ${issue.message}`);
  const c = parsed.data;
  const problems: string[] = [];
  if (c.memoryMiB !== undefined && c.memoryMiB < needs.minimumMiB)
    problems.push(`memory ${c.memoryMiB} MiB is below the ${needs.minimumMiB} MiB the guest needs at least`);
  if (c.cpus !== undefined && c.cpus < needs.minimumCpus) problems.push(`cpus ${c.cpus} is below the ${needs.minimumCpus} the guest needs at least`);
  const guestPaths = new Map<string, string>();
  for (const s of c.shares) {
    const normal = posix.normalize(s.guestPath);
    if (!s.guestPath.startsWith('/') || normal !== s.guestPath.replace(/\/+$/, '') || s.guestPath.split('/').includes('..'))
      problems.push(`share ${s.name}: guest path ${s.guestPath} is not an absolute, normalised path`);
    else if (normal !== '/host' && !normal.startsWith('/host/'))
      problems.push(`share ${s.name}: guest path ${s.guestPath} is not under /host, where the guest sees host folders`);
    const other = guestPaths.get(normal);
    if (other) problems.push(`share ${s.name}: guest path ${s.guestPath} is also share ${other}'s`);
    guestPaths.set(normal, s.name);
    if (s.table === 'FET' && s.hostPath === undefined) problems.push(`share ${s.name}: a host folder (FET) needs a host path`);
    if (s.table === 'FIT' && s.hostPath !== undefined) problems.push(`share ${s.name}: a stick path (FIT) takes no host path`);
    if (s.table === 'FIT' && s.mode !== undefined) problems.push(`share ${s.name}: a stick path (FIT) has no mode (cow and readonly are for host folders)`);
    if (s.hostPath !== undefined && !isAbsolute(s.hostPath) && !s.hostPath.startsWith('~') && !s.hostPath.startsWith('%'))
      problems.push(`share ${s.name}: host path ${s.hostPath} is not absolute (nor ~ or a %KnownFolder%)`);
  }
  const totalDiskMiB = c.disks.reduce((sum, d) => sum + d.sizeMiB, 0);
  if (totalDiskMiB > 64 * 1024) problems.push(`the extra disks add up to ${totalDiskMiB} MiB, more than the 65536 MiB a guest may have`);
  if (c.display === 'page' && c.devices.every((d) => d.kind !== 'tablet'))
    problems.push('display page needs a tablet device for the pointer (guest config NAME add device pointer tablet)');
  return problems;
}

/** Parses a committed or staged file's content; names the file on failure. */
export function parseConfig(raw: unknown, source: string): GuestConfig {
  const parsed = GuestConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(top level)'}: ${issue.message}`);
    throw new GuestConfigError(`${source} is not a valid guest configuration: ${problems.join('; ')}`, {
      hint: 'guest config NAME revert drops staged changes; a damaged committed configuration makes the guest unavailable',
      details: { reason: 'file', problems },
    });
  }
  return parsed.data;
}

/** The differences between two configurations, one line each (`show` prints them as staged changes). */
export function describeChanges(from: GuestConfig, to: GuestConfig): string[] {
  const lines: string[] = [];
  const scalar = (label: string, a: unknown, b: unknown) => {
    if (a !== b) lines.push(`${label}: ${a ?? 'auto'} → ${b ?? 'auto'}`);
  };
  scalar('memory', from.memoryMiB, to.memoryMiB);
  scalar('cpus', from.cpus, to.cpus);
  scalar('network', from.network, to.network);
  scalar('mac', from.mac, to.mac);
  scalar('display', from.display, to.display);
  for (const kind of ['shares', 'disks', 'devices'] as const) {
    const before = new Map(from[kind].map((item) => [item.name, JSON.stringify(item)]));
    const after = new Map(to[kind].map((item) => [item.name, JSON.stringify(item)]));
    for (const [name, text] of after) if (before.get(name) !== text) lines.push(`+ ${kind.slice(0, -1)} ${name} ${text}`);
    for (const name of before.keys()) if (!after.has(name)) lines.push(`- ${kind.slice(0, -1)} ${name}`);
  }
  return lines;
}
