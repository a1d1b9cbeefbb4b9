// `launcher image adapt IMAGE --for TARGET` (docs/adapt.md): a new catalog
// image derived from IMAGE that boots on TARGET's devices. The way customize
// works (src/images/image-customize.ts): a qcow2 overlay over the source's
// store file, plugged read-write into the helper appliance, where
// pocketvm-customize first PROBES the image (its kernel and initramfs tool,
// which of the target's drivers its initramfs has, fstab and kernel-line
// device names, serial console, interface names, installed packages) and
// changes nothing; the plan made from that is the pre-flight, printed before
// any change (all of it with --dry-run, which then stops). Then only the steps
// the target needs run, in the image's own tools inside a chroot: the initramfs
// made again with the target's drivers (or, when it cannot be, the target's
// devices chosen to match drivers the image has: SATA and e1000), fstab and the
// kernel line by UUID, a serial console, interface names not tied to other
// hardware, and qemu-guest-agent from the image's distribution's packages
// (fetched on this machine from its apt sources, installed with the image's
// dpkg). The overlay is imported as a new image with its parent and steps in
// the catalog's lineage: the source stays as it was, so keeping it undoes all.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { AdaptError, PocketError } from '../errors.ts';
import { applianceRequest } from '../appliance/appliance-client.ts';
import type { ApplianceAddress, CustomizeStep, GuestMount } from '../appliance/appliance-protocol.ts';
import type { StickLayout } from '../stick/layout.ts';
import { driversFor, FALLBACK_DRIVERS, TARGET_DEVICES, type DiskBus, type Hypervisor, type NicModel } from './hypervisor-targets.ts';

export type AdaptTarget = Hypervisor;
import type { CatalogImage } from './image-catalog.ts';
import { bootMounts } from './guest-mounts.ts';
import { rootLocation, type RootLocation } from './image-customize.ts';
import { importDisk, type ImportEvents } from './image-import.ts';
import { IMAGE_NAME_PATTERN, imageNameFor, type ImageStore } from './image-store.ts';
import { lastWords, runQemuImg } from './qemu-img.ts';

const run = promisify(execFile);

export type DriverState = 'builtin' | 'initramfs' | 'available' | 'missing';

/** What pocketvm-customize's probe found in the image. */
export interface AdaptProbe {
  kernel?: string;
  initramfsTool: 'update-initramfs' | 'dracut' | 'none';
  drivers: Record<string, DriverState>;
  /** fstab lines naming a device by its kernel name (/dev/sda1 …). */
  fstabDevices: { device: string; mountpoint: string }[];
  kernelRoot?: string;
  grub: boolean;
  serial: boolean;
  netNames: string[];
  netRules: boolean;
  distribution?: { id: string; codename: string };
  arch?: string;
  packages: string[];
  /** A root on an LVM volume: its segments' types (lvs --segments), in order. */
  rootVolumeSegments?: string[];
}

export function parseProbe(lines: string[]): AdaptProbe {
  const probe: AdaptProbe = { initramfsTool: 'none', drivers: {}, fstabDevices: [], grub: false, serial: false, netNames: [], netRules: false, packages: [] };
  for (const line of lines) {
    const [, key, ...rest] = line.split(' ');
    if (line.split(' ')[0] !== 'probe' || key === undefined) continue;
    const value = rest.join(' ');
    if (key === 'kernel' && value !== 'none') probe.kernel = value;
    else if (key === 'initramfs-tool' && (value === 'update-initramfs' || value === 'dracut')) probe.initramfsTool = value;
    else if (key === 'driver') probe.drivers[rest[0]!] = rest[1] as DriverState;
    else if (key === 'fstab-device') probe.fstabDevices.push({ device: rest[0]!, mountpoint: rest[1] ?? '' });
    else if (key === 'grub') probe.grub = true;
    else if (key === 'kernel-root') probe.kernelRoot ??= value;
    else if (key === 'serial') probe.serial = probe.serial || value === 'yes';
    else if (key === 'netname') probe.netNames.push(value);
    else if (key === 'net-rules') probe.netRules = true;
    else if (key === 'distribution') probe.distribution = { id: rest[0]!, codename: rest[1] ?? 'unknown' };
    else if (key === 'arch') probe.arch = value;
    else if (key === 'packages') probe.packages = rest.filter(Boolean);
    else if (key === 'root-volume') probe.rootVolumeSegments = rest.filter(Boolean);
  }
  return probe;
}

/** One line of the pre-flight: what a step changes, or why nothing needs to. */
export interface AdaptChange {
  step: 'drivers' | 'devices' | 'uuid' | 'serial' | 'netnames' | 'agent';
  change: boolean;
  what: string;
}

export interface AdaptPlan {
  target: AdaptTarget;
  /** The devices the adapted image boots with on the target: the target's own, or the emulated fallback. */
  devices: { disk: DiskBus; nic: NicModel };
  changes: AdaptChange[];
  steps: CustomizeStep[];
  /** qemu-guest-agent wanted from the image's distribution (fetched on this machine before the change). */
  agent: boolean;
}

const byName = (device: string) => /^\/dev\/(([sv]|h|xv)d[a-z]+[0-9]+|nvme\d+n\d+p\d+)$/.test(device);

/** The plan for TARGET from the probe: pure, so every branch is tested without a boot (test/images/adapt-plan.test.ts). */
export function planAdapt(target: AdaptTarget, probe: AdaptProbe): AdaptPlan {
  const facts = TARGET_DEVICES[target];
  const drivers = driversFor(target);
  const changes: AdaptChange[] = [];
  const steps: CustomizeStep[] = [];
  if (!probe.kernel)
    throw new AdaptError('adaptRefused', 'the image has no Linux kernel (neither /lib/modules nor /boot/vmlinuz-*): adapt works on Linux images', {
      details: { reason: 'not-linux' },
    });
  // The stick maps a root volume itself, without device-mapper (payload/rootfs/lib/pocketvm/lvm-volume.sh): one linear segment only.
  // Other targets boot the image's own initramfs, whose lvm activates any layout it has.
  const segments = probe.rootVolumeSegments;
  if (target === 'pocketvm' && segments && (segments.length !== 1 || segments[0] !== 'linear'))
    throw new AdaptError(
      'adaptRefused',
      `the root's LVM volume is ${segments.length === 1 ? `one ${segments[0]} segment` : `${segments.length} segments (${segments.join(', ')})`}: the stick maps only a volume in one linear segment`,
      { hint: 'adapt it for libvirt, or move the volume into one linear segment (lvconvert, pvmove) in the image', details: { reason: 'lvm-layout' } },
    );
  const has = (m: string) => probe.drivers[m] === 'builtin' || probe.drivers[m] === 'initramfs';
  const needed = drivers.filter((m) => !has(m));
  const missing = needed.filter((m) => probe.drivers[m] === 'missing');
  let devices: AdaptPlan['devices'] = { disk: facts.diskBus, nic: facts.nicModel };
  if (needed.length === 0) changes.push({ step: 'drivers', change: false, what: `the initramfs has the drivers ${target} needs (${drivers.join(', ')})` });
  else if (probe.initramfsTool !== 'none' && missing.length < needed.length) {
    const adding = needed.filter((m) => !missing.includes(m));
    steps.push({ kind: 'drivers', modules: adding });
    changes.push({
      step: 'drivers',
      change: true,
      what: `initramfs of ${probe.kernel} made again with ${probe.initramfsTool}, adding ${adding.join(', ')}${missing.length ? ` (not in this kernel: ${missing.join(', ')})` : ''}`,
    });
  } else {
    const fallbackOk = FALLBACK_DRIVERS.every(has);
    if (!fallbackOk)
      throw new AdaptError(
        'adaptRefused',
        `the image's initramfs cannot be made again (${probe.initramfsTool === 'none' ? 'no update-initramfs or dracut' : `no ${missing.join(', ')} in its kernel`}) and lacks ${FALLBACK_DRIVERS.filter((m) => !has(m)).join(', ')} too: no device ${target} offers would find its root`,
        { details: { reason: 'no-drivers', missing: needed } },
      );
    devices = { disk: facts.fallback.diskBus, nic: facts.fallback.nicModel };
    changes.push({
      step: 'devices',
      change: true,
      what: `devices chosen to match the image's drivers: disk ${devices.disk}, NIC ${devices.nic} (its initramfs ${probe.initramfsTool === 'none' ? 'has no tool to make it again' : `cannot get ${missing.join(', ')}`})`,
    });
  }
  const names = [...probe.fstabDevices.map((f) => f.device), ...(probe.kernelRoot && byName(probe.kernelRoot) ? [probe.kernelRoot] : [])];
  if (names.length) {
    steps.push({ kind: 'uuid' });
    changes.push({
      step: 'uuid',
      change: true,
      what: `by UUID instead of device name: ${[...new Set(names)].join(', ')} (fstab${probe.kernelRoot && byName(probe.kernelRoot) ? ', kernel line' : ''})`,
    });
  } else changes.push({ step: 'uuid', change: false, what: 'fstab and the kernel line name no device by its kernel name' });
  if (!probe.grub) changes.push({ step: 'serial', change: false, what: 'no grub.cfg: the kernel line is left as it is' });
  else if (probe.serial) changes.push({ step: 'serial', change: false, what: 'the kernel line has a serial console (console=ttyS0)' });
  else {
    steps.push({ kind: 'serial' });
    changes.push({ step: 'serial', change: true, what: 'console=ttyS0,115200 added to the kernel line (grub.cfg and /etc/default/grub)' });
  }
  if (probe.netNames.length || probe.netRules) {
    steps.push({ kind: 'netnames' });
    changes.push({
      step: 'netnames',
      change: true,
      what: `interface names not tied to other hardware: ${probe.netNames.map((n, i) => `${n} -> eth${i}`).join(', ') || 'none configured'}, net.ifnames=0${probe.netRules ? ', 70-persistent-net.rules removed' : ''}`,
    });
  } else changes.push({ step: 'netnames', change: false, what: 'no interface named for particular hardware' });
  let agent = false;
  if (!facts.guestAgent) changes.push({ step: 'agent', change: false, what: `${target} does not use qemu-guest-agent` });
  else if (probe.packages.includes('qemu-guest-agent')) changes.push({ step: 'agent', change: false, what: 'qemu-guest-agent is installed' });
  else if (!probe.distribution || !probe.arch)
    changes.push({ step: 'agent', change: false, what: 'qemu-guest-agent left out: the image has no dpkg (only Debian-family images get it offline)' });
  else {
    agent = true;
    changes.push({
      step: 'agent',
      change: true,
      what: `qemu-guest-agent installed with the image's dpkg, from ${probe.distribution.id} ${probe.distribution.codename} (${probe.arch}) packages fetched on this machine`,
    });
  }
  return { target, devices, changes, steps, agent };
}

/** This machine's distribution: the agent comes from its apt sources only when they are the image's. */
async function hostDistribution(): Promise<{ id: string; codename: string; arch: string }> {
  const text = await readFile('/etc/os-release', 'utf8').catch(() => '');
  const field = (key: string) => new RegExp(`^${key}="?([^"\\n]*)"?$`, 'm').exec(text)?.[1] ?? 'unknown';
  const arch = await run('dpkg', ['--print-architecture']).then(
    (r) => r.stdout.trim(),
    () => 'unknown',
  );
  return { id: field('ID'), codename: field('VERSION_CODENAME'), arch };
}

/** qemu-guest-agent and what it depends on that the image lacks, downloaded by apt-get from this machine's sources into DIR. */
async function fetchAgent(probe: AdaptProbe, dir: string): Promise<string[]> {
  const host = await hostDistribution();
  const guest = probe.distribution!;
  if (host.id !== guest.id || host.codename !== guest.codename || host.arch !== probe.arch)
    throw new AdaptError(
      'adaptRefused',
      `qemu-guest-agent: the image is ${guest.id} ${guest.codename} ${probe.arch}, this machine's apt sources are ${host.id} ${host.codename} ${host.arch}: its packages would not be the image's`,
      { hint: 'adapt on a machine of the same distribution, or give --no-agent', details: { reason: 'no-packages' } },
    );
  const depends = await run(
    'apt-cache',
    ['depends', '--recurse', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances', 'qemu-guest-agent'],
    { maxBuffer: 16 << 20 },
  ).catch((cause: unknown) => {
    throw new AdaptError('adaptRefused', `qemu-guest-agent: apt-cache knows no such package on this machine`, { cause, details: { reason: 'no-packages' } });
  });
  const installed = new Set(probe.packages.map((p) => p.replace(/:.*$/, '')));
  const wanted = [...new Set(depends.stdout.split('\n').filter((l) => /^[a-z0-9]/.test(l)))].map((l) => l.trim()).filter((p) => !installed.has(p));
  await run('apt-get', ['download', '-q', ...wanted], { cwd: dir, maxBuffer: 16 << 20 }).catch((cause: unknown) => {
    throw new AdaptError(
      'adaptRefused',
      `qemu-guest-agent: apt-get download failed: ${String((cause as { stderr?: string }).stderr ?? cause)
        .trim()
        .split('\n')
        .at(-1)}`,
      {
        cause,
        details: { reason: 'no-packages' },
      },
    );
  });
  return (await readdir(dir)).filter((f) => f.endsWith('.deb'));
}

export interface AdaptOptions {
  target: AdaptTarget;
  name?: string;
  dryRun: boolean;
  noAgent: boolean;
}

export interface AdaptResult {
  image: string;
  target: AdaptTarget;
  devices: AdaptPlan['devices'];
  changes: AdaptChange[];
  dryRun: boolean;
  /** The new image (not with --dry-run). */
  made?: { name: string; sha256: string; steps: string[] };
  ms: number;
}

const bad = (message: string, reason: string) => new AdaptError('adaptRefused', message, { details: { reason } });

export function checkAdaptName(store: ImageStore, name: string | undefined): void {
  if (name !== undefined && (!IMAGE_NAME_PATTERN.test(name) || store.catalog.nameTaken(name)))
    throw bad(`--name ${name}: ${IMAGE_NAME_PATTERN.test(name) ? 'taken by another image' : 'not an image name'}`, 'bad-name');
}

/** Where the steps run, when it is more than a root partition: "root LVM volume vg/root, /boot partition 1". */
const where = (root: AdaptRoot) =>
  [
    ...(root.volume ? [`root LVM volume ${root.volume}`] : []),
    ...root.mounts.map((m) => `${m.mountpoint} ${m.volume ? `LVM volume ${m.volume}` : `partition ${m.partition}`}`),
  ].join(', ');

/** Where the steps find the image: its root (a partition, or an LVM volume on its PV's partition) and its own /boot and /boot/efi under it. */
type AdaptRoot = RootLocation & { mounts: GuestMount[] };

async function inAppliance(layout: StickLayout, address: ApplianceAddress, overlay: string, root: AdaptRoot, steps: CustomizeStep[]) {
  try {
    return await applianceRequest(layout, address, 'customize', {
      overlay,
      rootPartition: root.partition,
      ...(root.volume ? { rootVolume: root.volume } : {}),
      ...(root.mounts.length ? { mounts: root.mounts } : {}),
      steps,
    });
  } catch (error) {
    if (error instanceof PocketError && error.details.reason === 'customize-failed')
      throw new AdaptError('adaptFailed', `a step failed in the image: ${error.message}`, { cause: error, details: { reason: 'step-failed' } });
    throw error;
  }
}

export async function adaptImage(
  layout: StickLayout,
  store: ImageStore,
  address: ApplianceAddress,
  image: CatalogImage,
  options: AdaptOptions,
  events: ImportEvents & { preflight: (plan: AdaptPlan) => void },
): Promise<AdaptResult> {
  const started = performance.now();
  checkAdaptName(store, options.name);
  const located = await rootLocation(layout, address, store, image, events);
  // Its /boot mounted too: the initramfs made again and the kernel line changed are the ones its boot loader reads.
  const root: AdaptRoot = { partition: located.partition, volume: located.volume, mounts: bootMounts(located.facts, located) };
  const overlay = join(store.paths.incoming, `${process.pid}-${randomBytes(6).toString('hex')}-adapt.qcow2`);
  const debs = await mkdtemp(join(tmpdir(), 'pocketvm-adapt-'));
  try {
    const made = await runQemuImg(layout.root, ['create', '-f', 'qcow2', '-F', 'qcow2', '-b', relative(store.paths.incoming, store.fileOf(image)), overlay]);
    if (made.exitCode !== 0) throw new AdaptError('adaptFailed', `the overlay could not be made: ${lastWords(made)}`, { details: { reason: 'failed' } });
    events.step(`probing ${image.name} in the appliance${where(root) ? ` (${where(root)})` : ''}`);
    const probed = await inAppliance(layout, address, overlay, root, [{ kind: 'probe', modules: driversFor(options.target) }]);
    const probe = parseProbe(probed.done);
    const plan = planAdapt(options.target, probe);
    if (options.noAgent && plan.agent) {
      plan.agent = false;
      plan.changes = plan.changes.map((c) => (c.step === 'agent' ? { step: 'agent', change: false, what: 'qemu-guest-agent left out (--no-agent)' } : c));
    }
    events.preflight(plan);
    const result: AdaptResult = { image: image.name, target: options.target, devices: plan.devices, changes: plan.changes, dryRun: options.dryRun, ms: 0 };
    if (options.dryRun || !plan.changes.some((c) => c.change)) {
      if (!options.dryRun) throw bad(`${image.name} needs nothing changed for ${options.target}`, 'nothing-to-do');
      return { ...result, ms: Math.round(performance.now() - started) };
    }
    const steps = [...plan.steps];
    if (plan.agent) {
      events.step("fetching qemu-guest-agent and what it needs from this machine's apt sources");
      const files = await fetchAgent(probe, debs);
      events.step(`${files.length} packages: ${files.map((f) => f.split('_')[0]).join(', ')}`);
      steps.push({ kind: 'debs', dir: debs });
    }
    events.step(`adapting ${image.name} for ${options.target} in the appliance`);
    const done = await inAppliance(layout, address, overlay, root, steps);
    const recorded = [
      `adapt for ${options.target}: disk ${plan.devices.disk}, NIC ${plan.devices.nic}${where(root) ? ` (steps run on ${where(root)})` : ''}`,
      ...plan.changes.filter((c) => c.change).map((c) => `${c.step}: ${c.what}`),
      ...done.done.filter((d) => d.startsWith('debs ')).map((d) => `installed: ${d.slice(5).trim()}`),
    ];
    events.step(`${done.done.length} steps done in ${(done.ms / 1000).toFixed(1)} s; storing the new image`);
    const name = options.name ?? imageNameFor(`${image.name}-${options.target}`, (n) => store.catalog.nameTaken(n));
    const stored = await importDisk(
      layout,
      store,
      {
        spec: overlay,
        format: 'qcow2',
        display: `adapt of ${image.name} (${image.sha256.slice(0, 16)}…) for ${options.target}`,
        sourceBytes: image.virtualBytes,
      },
      name,
      events,
    );
    store.catalog.setLineage(stored.sha256, { parent: image.sha256, parentName: image.name, steps: recorded, madeAt: new Date().toISOString() });
    return { ...result, made: { name: stored.name, sha256: stored.sha256, steps: recorded }, ms: Math.round(performance.now() - started) };
  } finally {
    await rm(overlay, { force: true });
    await rm(debs, { recursive: true, force: true });
  }
}
