// `launcher probe`: what this PC is (the HostProfile) and how the stick's
// guest would be sized on it, with the reasons. Reads only; starts nothing.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { asPocketError, UsageError } from '../../errors.ts';
import type { HostProfile } from '../../hostprobe/host-profile.ts';
import type { IgnoredRegistryValue } from '../../session/session-registry.ts';
import type { MachineSizing, SizingOverrides } from '../../session/sizing.ts';
import { registryPaths, type StickLayout, stickLayout } from '../../stick/layout.ts';
import { resolveStickRoot } from '../../stick/stick-root.ts';
import { bold, dim, type Output } from '../output.ts';
import { guestOption, jsonOption, stickOption } from './options.ts';

export interface ProbeReport {
  profile: HostProfile;
  guest: string;
  /** Null when the guest's manifest could not be read, or the host cannot run it (`sizingError`). */
  sizing: MachineSizing | null;
  sizingError: { code: number; kind: string; message: string; hint?: string } | null;
  /** Registry sizing values (Machine\MemoryMiB, Machine\Cpus) that sizing ignored, and why. */
  ignoredRegistryValues: IgnoredRegistryValue[];
}

const gib = (mib: number) => `${(mib / 1024).toFixed(1)} GiB`;

function describe(report: ProbeReport, out: Output): void {
  const { profile } = report;
  const row = (label: string, text: string) => out.line(`${label.padEnd(13)}${text}`);
  const { os, cpu, memory, locale, stick, proxy } = profile;
  row(
    'host',
    `${os.name ?? os.family}${os.version && !os.name?.includes(os.version) ? ` ${os.version}` : ''}, kernel ${os.kernel}, ${os.arch}${os.machineArch ? ` on ${os.machineArch}` : ''}`,
  );
  const virt = cpu.virtualization.length ? cpu.virtualization.join(' ') : 'none reported';
  row(
    'cpu',
    `${cpu.model ?? 'unknown model'}, ${cpu.cores ?? '?'} cores, ${cpu.threads} threads; virtualisation: ${virt}${cpu.hypervisor ? ' (this host is itself a VM)' : ''}`,
  );
  row('memory', `${gib(memory.totalMiB)} total, ${gib(memory.availableMiB)} available`);
  if (profile.accelerators.length === 0) row('accelerator', 'none found (TCG, software emulation)');
  for (const a of profile.accelerators) row('accelerator', `${a.name}: ${a.usable ? 'usable' : 'not usable'} (${a.reason})`);
  row('display', profile.display ? `${profile.display.kind}${profile.display.detail ? ` (${profile.display.detail})` : ''}` : 'unknown');
  if (stick) {
    const drive = stick.drive;
    const where = drive
      ? `${drive.device}${drive.bus ? ` [${drive.bus}]` : ''} mounted on ${stick.mountpoint}${drive.sizeBytes ? `, ${gib(drive.sizeBytes / 1048576)}` : ''}${drive.readOnly ? ', read-only' : ''}`
      : 'drive unknown';
    const kind = stick.kind === 'removable' ? 'removable drive' : stick.kind === 'fixed-disk-folder' ? 'a folder on a fixed disk' : 'kind unknown';
    row('stick', `${stick.root}: ${where} (${kind})`);
    if (stick.usbIdentity) {
      const u = stick.usbIdentity;
      row('', `USB ${u.vendorId}:${u.productId}${u.product ? ` ${u.product}` : ''}${u.serial ? `, serial ${u.serial}` : ''}`);
    }
  } else {
    row('stick', 'none');
  }
  const keyboard = locale.keyboard
    ? `${locale.keyboard.layout ?? locale.keyboard.native}${locale.keyboard.variant ? ` (${locale.keyboard.variant})` : ''}`
    : 'not set';
  row('locale', `${locale.locale ?? 'unknown'}, keyboard ${keyboard}, timezone ${locale.timezone?.name ?? locale.timezone?.native ?? 'unknown'}`);
  if (proxy && proxy.source !== 'none')
    row(
      'proxy',
      [
        proxy.http && `http ${proxy.http}`,
        proxy.https && `https ${proxy.https}`,
        proxy.autoConfigUrl && `auto-config ${proxy.autoConfigUrl}`,
        proxy.noProxy.length ? `not for ${proxy.noProxy.join(', ')}` : '',
      ]
        .filter(Boolean)
        .join('; ') + ` (${proxy.source})`,
    );
  else row('proxy', 'none');
  row('fingerprint', profile.fingerprint ?? 'none (no stick to keep its salt on)');
  row('probe', `${profile.probeMs} ms`);
  out.line();
  if (report.sizing) {
    out.line(bold(`guest ${report.guest}: ${report.sizing.memoryMiB} MiB, ${report.sizing.cpus} vCPU${report.sizing.cpus === 1 ? '' : 's'}`));
    for (const reason of report.sizing.reasons) out.line(`  ${reason}`);
    for (const value of report.ignoredRegistryValues) out.line(`  ignored ${value.key}\\${value.name} = ${value.data} (${value.layer} layer): ${value.reason}`);
  } else if (report.sizingError) {
    out.line(bold(`guest ${report.guest}: not sized`));
    out.line(`  ${report.sizingError.message}${report.sizingError.hint ? dim(` (${report.sizingError.hint})`) : ''}`);
  }
  if (profile.notes.length > 0) {
    out.line();
    for (const note of profile.notes) out.line(dim(`note: ${note.step}: ${note.message}`));
  }
}

/**
 * Machine\MemoryMiB and Machine\Cpus from the user's registry, as a launch
 * would apply them. Probing writes nothing: a user without a registry file yet
 * (or a stick without users) has no overrides.
 */
async function registryOverrides(
  layout: StickLayout,
  options: { user?: string; guest: string },
  hostId: string | null,
): Promise<{ overrides: SizingOverrides; ignored: IgnoredRegistryValue[] }> {
  const none = { overrides: {}, ignored: [] };
  if (!existsSync(layout.usersRoot)) return none;
  const { findStickUser } = await import('../stick-user.ts');
  const user = await findStickUser(layout, options.user);
  if (user === undefined || !existsSync(registryPaths(layout, user, options.guest).file)) return none;
  const [{ openUserRegistry }, { ignoredSizingValues, registrySizingOverrides }] = await Promise.all([
    import('../../guestregistry/user-registry.ts'),
    import('../../session/session-registry.ts'),
  ]);
  const registry = await openUserRegistry({ paths: registryPaths(layout, user, options.guest), hostSalt: layout.hostSalt, ...(hostId ? { hostId } : {}) });
  try {
    return { overrides: registrySizingOverrides(registry), ignored: ignoredSizingValues(registry) };
  } finally {
    registry.close();
  }
}

export function registerProbe(program: Command, output: () => Output): void {
  const command = program
    .command('probe')
    .description("show what this computer is (OS, CPU, memory, accelerators, display, the stick's drive, locale) and how the guest would be sized on it");
  stickOption(command);
  guestOption(command);
  jsonOption(command);
  command.option('--user <name>', "size with this user's registry overrides (default: the stick's only user)");
  command.action(async (options: { stick?: string; guest: string; user?: string }) => {
    const out = output();
    if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(options.guest))
      throw new UsageError(`"${options.guest}" is not a guest name`, 'guest names are lower-case letters, digits and -');
    const [{ probeHost }, { sizeMachine }, { loadManifest }] = await Promise.all([
      import('../../hostprobe/probe-host.ts'),
      import('../../session/sizing.ts'),
      import('../../payload/guest-manifest.ts'),
    ]);
    const root = resolveStickRoot(options.stick);
    // A folder that is not there yet (a checkout's demo stick before its first use) is probed without a stick.
    const profile = await probeHost(existsSync(root) ? { stickRoot: root } : {});
    const report: ProbeReport = { profile, guest: options.guest, sizing: null, sizingError: null, ignoredRegistryValues: [] };
    try {
      const layout = stickLayout(root);
      const manifest = await loadManifest(join(layout.payloadRoot, options.guest));
      const { overrides, ignored } = await registryOverrides(layout, options, profile.fingerprint);
      report.ignoredRegistryValues = ignored;
      report.sizing = sizeMachine(manifest, profile, overrides);
    } catch (error) {
      const failure = asPocketError(error);
      report.sizingError = { code: failure.exitCode, kind: failure.exit, message: failure.message, ...(failure.hint ? { hint: failure.hint } : {}) };
    }
    out.data(report);
    if (!out.json) describe(report, out);
  });
}
