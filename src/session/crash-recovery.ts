// After a session that did not end cleanly (the stick was pulled out, the
// launcher was killed, the host lost power), the next launch checks what that
// session had open before the guest boots again, repairs what is safe to
// repair, and says what it found and did:
//
//   - the logged-in user's personal disks: `qemu-img check` (through the key:
//     an encrypted qcow2 cannot be opened without it); leaked clusters, the
//     normal residue of a QEMU killed mid-write, are freed (`-r leaks`, no data
//     touched); corruption is reported and left alone;
//   - their guest registry: the registry's own integrity check (SQLite rolls
//     back a half-written transaction on open; a damaged file is swapped for
//     its last good copy and kept aside);
//   - leftovers of the dead session on the stick: a half-created disk
//     (`*.partial`), half-written lock updates.
//
// Another user's disks need that user's key: they are marked on the stick
// (users/<name>/recovery-pending.json) and checked when that user logs in.
import { existsSync } from 'node:fs';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { personalDiskPath, type UnlockedUser, userPaths } from '../auth/users.ts';
import type { HostAdapter } from '../hostprobe/host-adapter.ts';
import { openChecked } from '../guestregistry/last-good-copy.ts';
import { registryPaths, type StickLayout } from '../stick/layout.ts';
import type { LockHolder } from '../stick/lock.ts';
import { liveSessions } from '../stick/session-locks.ts';
import { checkDisk, type DiskCheckResult } from '../vmm/disk-check.ts';
import { findQemuImg } from '../vmm/qemu-binary.ts';
import { isTempOf } from '../primitives/atomic-replace.ts';

export interface DiskRecovery extends DiskCheckResult {
  /** What recovery did about it. */
  action: 'none' | 'freed-leaks' | 'left-alone';
}

export interface RegistryRecoveryReport {
  file: string;
  status: 'clean' | 'restored' | 'reset' | 'damaged';
  message?: string;
}

export interface RecoveryReport {
  /** The session that did not end cleanly, as its stale lock recorded it. */
  previous: Pick<LockHolder, 'command' | 'pid' | 'hostname' | 'startedAt'> & { user?: string };
  disks: DiskRecovery[];
  registry?: RegistryRecoveryReport;
  /** Leftovers of the dead session removed from the stick. */
  removed: string[];
  /** What could not be checked now, and when it will be. */
  deferred: string[];
  /** True when nothing is left damaged. */
  ok: boolean;
  /** The one line for a person. */
  summary: string;
  ms: number;
}

export interface RecoveryOptions {
  layout: StickLayout;
  /** The dead session's lock, or what a pending marker recorded of it. */
  previous: LockHolder;
  /** The user logging in now: their disks and registry are checked. */
  user?: Pick<UnlockedUser, 'name' | 'diskKey'>;
  guest: string;
  host: HostAdapter;
  onStep?: (message: string) => void;
}

const PENDING_FILE = 'recovery-pending.json';

function pendingMarker(layout: StickLayout, user: string): string {
  return join(userPaths(layout, user).dir, PENDING_FILE);
}

/**
 * Taking over a dead session's lock: its user's files wait for a check from
 * now on, even if this launch never gets as far as checking them.
 */
export async function markRecoveryPending(layout: StickLayout, previous: LockHolder): Promise<void> {
  if (!previous.user) return;
  await writeFile(pendingMarker(layout, previous.user), `${JSON.stringify(previous, null, 2)}\n`).catch(() => {});
}

/** Whether `user`'s files still wait for a check since an earlier session died. */
export async function pendingRecovery(layout: StickLayout, user: string): Promise<LockHolder | undefined> {
  try {
    return JSON.parse(await readFile(pendingMarker(layout, user), 'utf8')) as LockHolder;
  } catch {
    return undefined;
  }
}

async function userDisks(layout: StickLayout, user: string): Promise<{ disks: string[]; partial: string[] }> {
  const dir = userPaths(layout, user).disksDir;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return { disks: [], partial: [] };
  }
  return {
    disks: names.filter((name) => name.endsWith('.qcow2')).map((name) => join(dir, name)),
    partial: names.filter((name) => name.endsWith('.qcow2.partial')).map((name) => join(dir, name)),
  };
}

async function recoverDisk(path: string, options: RecoveryOptions): Promise<DiskRecovery> {
  // A check that cannot run is reported; it never stops the launch.
  try {
    return await checkAndRepair(path, options);
  } catch (error) {
    return {
      path,
      status: 'failed',
      leaks: 0,
      corruptions: 0,
      leaksFixed: 0,
      corruptionsFixed: 0,
      ms: 0,
      message: (error as Error).message,
      action: 'left-alone',
    };
  }
}

async function checkAndRepair(path: string, options: RecoveryOptions): Promise<DiskRecovery> {
  const qemuImg = findQemuImg(options.host, options.layout.root);
  const key = options.user?.diskKey;
  const checked = await checkDisk(qemuImg, path, key ? { key } : {});
  if (checked.status !== 'leaks') return { ...checked, action: checked.status === 'clean' ? 'none' : 'left-alone' };
  options.onStep?.(
    `${basename(path)}: ${checked.leaks} leaked cluster${checked.leaks === 1 ? '' : 's'} (space a killed QEMU had allocated but not yet used); freeing them`,
  );
  const repaired = await checkDisk(qemuImg, path, { ...(key ? { key } : {}), repair: 'leaks' });
  return { ...repaired, leaks: checked.leaks, action: repaired.leaksFixed > 0 ? 'freed-leaks' : 'left-alone' };
}

function recoverRegistry(file: string): RegistryRecoveryReport {
  try {
    const { db, recovery } = openChecked(file, 'quick');
    db.close();
    if (!recovery) return { file, status: 'clean' };
    return { file, status: recovery.restored ? 'restored' : 'reset', message: recovery.message };
  } catch (error) {
    return { file, status: 'damaged', message: (error as Error).message };
  }
}

function describeDisk(disk: DiskRecovery): string {
  const name = basename(disk.path);
  switch (disk.status) {
    case 'clean':
      return disk.action === 'freed-leaks'
        ? `${name} clean after freeing ${disk.leaksFixed} leaked cluster${disk.leaksFixed === 1 ? '' : 's'}`
        : `${name} clean`;
    case 'leaks':
      return `${name} has ${disk.leaks} leaked clusters that could not be freed`;
    case 'corrupt':
      return `${name} has ${disk.corruptions} corrupt clusters (left as they are; copy the stick before repairing)`;
    case 'in-use':
      return `${name} is in use by another process (not checked)`;
    case 'failed':
      return `${name} could not be checked (${disk.message ?? 'qemu-img failed'})`;
  }
}

export async function recoverAfterCrash(options: RecoveryOptions): Promise<RecoveryReport> {
  const started = performance.now();
  const { layout, previous } = options;
  const say = options.onStep ?? (() => {});
  const report: RecoveryReport = {
    previous: {
      command: previous.command,
      pid: previous.pid,
      hostname: previous.hostname,
      startedAt: previous.startedAt,
      ...(previous.user ? { user: previous.user } : {}),
    },
    disks: [],
    removed: [],
    deferred: [],
    ok: true,
    summary: '',
    ms: 0,
  };

  // Half-written lock updates (temp + rename interrupted).
  try {
    for (const name of await readdir(layout.runDir)) {
      if (isTempOf(name, basename(layout.lockFile))) {
        await rm(join(layout.runDir, name), { force: true });
        report.removed.push(join(layout.runDir, name));
      }
    }
  } catch {
    // no run/ yet
  }

  const user = options.user?.name;
  if (user) {
    // Another guest running from the stick right now has its disks open: they are its own session's, not the dead one's.
    const running = new Set((await liveSessions(layout)).map((session) => session.guest).filter((guest) => guest !== options.guest));
    const notRunning = (path: string) => ![...running].some((guest) => basename(path).startsWith(`${guest}.`));
    const found = await userDisks(layout, user);
    const disks = found.disks.filter(notRunning);
    const partial = found.partial.filter(notRunning);
    // A disk whose creation was cut short was never the user's disk.
    for (const path of partial) {
      await rm(path, { force: true });
      report.removed.push(path);
    }
    // The guest about to boot first, then the user's other guests' disks.
    const own = personalDiskPath(layout, user, options.guest);
    for (const path of [...disks].sort((a, b) => Number(b === own) - Number(a === own))) {
      say(`checking ${user}'s disk ${basename(path)} (qemu-img check)`);
      report.disks.push(await recoverDisk(path, options));
    }
    const registry = registryPaths(layout, user, options.guest).file;
    if (existsSync(registry)) {
      say(`checking ${user}'s registry`);
      report.registry = recoverRegistry(registry);
    }
    await rm(pendingMarker(layout, user), { force: true });
  }
  // The dead session's user is someone else: their disk waits for their key.
  if (previous.user && previous.user !== user) {
    try {
      await writeFile(pendingMarker(layout, previous.user), `${JSON.stringify(previous, null, 2)}\n`);
      report.deferred.push(`${previous.user}'s disk is checked when ${previous.user} logs in next`);
    } catch {
      report.deferred.push(`${previous.user}'s disk could not be marked for a check`);
    }
  }

  report.ok = report.disks.every((disk) => disk.status === 'clean') && report.registry?.status !== 'damaged';
  const parts = [
    ...report.disks.map(describeDisk),
    ...(report.registry
      ? [
          report.registry.status === 'clean'
            ? 'registry clean'
            : `registry ${report.registry.status}${report.registry.message ? `: ${report.registry.message}` : ''}`,
        ]
      : []),
    ...(report.removed.length > 0 ? [`removed ${report.removed.length} leftover file${report.removed.length === 1 ? '' : 's'}`] : []),
    ...report.deferred,
  ];
  const who = `launcher ${previous.command}${previous.pid > 0 ? ` (pid ${previous.pid} on ${previous.hostname}, since ${previous.startedAt})` : ''}`;
  report.summary = `the last session (${who}) did not end cleanly; recovery: ${parts.length > 0 ? parts.join('; ') : 'nothing to check'}`;
  report.ms = Math.round(performance.now() - started);
  return report;
}
