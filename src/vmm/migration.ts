// A guest's full state (memory and devices) out of QEMU and back in, over QMP
// migration, on channels only the launcher holds.
//
// In: QEMU starts with `-incoming defer` and an extra raw channel (a
// socketpair descriptor, MachineSpec.streams); `migrate-incoming
// uri=fd:<number>` reads the state from it (QEMU 7.2 parses a numeric fd name
// for incoming migration). No path, nothing on any filesystem.
//
// Out: QEMU 7.2's outgoing `fd:` looks the name up only among descriptors
// passed with `getfd` (SCM_RIGHTS over the QMP socket), which Node cannot
// send, and `exec:` would need a spawn that QEMU's sandbox denies. So QEMU
// connects to a UNIX socket the launcher listens on inside a fresh 0700
// directory (the same kind as the control socket's), accepts one connection,
// and the directory is removed at once.
import { rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GuestFailedError, PocketError, TimeoutError } from '../errors.ts';
import type { QmpClient, QmpVersion } from './qmp-client.ts';

/**
 * The CPU every machine gets (MachineSpec.cpuModel), so that a saved state
 * loads on another PC: a named model is the same everywhere, where `host`
 * (KVM) or `max` (TCG) differ by host or QEMU build. Nehalem (2008, x86-64-v2:
 * SSE4.2, POPCNT) runs on every x86-64 PC since, and TCG emulates all of it;
 * `enforce` makes QEMU refuse to start rather than silently hand the guest a
 * smaller CPU on a host that lacks a feature (the accelerator fallback then
 * takes over).
 */
export const PORTABLE_CPU_MODEL = 'Nehalem,enforce';

/** "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)": what two QEMUs must share to exchange state. */
export function qemuVersionString(version: QmpVersion): string {
  const { major, minor, micro } = version.qemu;
  const pkg = version.package.trim();
  return `${major}.${minor}.${micro}${pkg ? ` (${pkg})` : ''}`;
}

/** The same string from `qemu-system-x86_64 --version`'s first line. */
export function parseQemuVersionOutput(text: string): string | undefined {
  const match = /version (\d+)\.(\d+)\.(\d+)(?:\s*\(([^)]*)\))?/.exec(text);
  if (!match) return undefined;
  return qemuVersionString({ qemu: { major: Number(match[1]), minor: Number(match[2]), micro: Number(match[3]) }, package: match[4] ?? '' });
}

/** The versioned machine type an alias (`q35`) stands for in this QEMU: the layout the state is in. */
export async function resolvedMachineType(qmp: QmpClient, alias = 'q35'): Promise<string> {
  const machines = await qmp.execute<Array<{ name: string; alias?: string }>>('query-machines');
  return machines.find((machine) => machine.alias === alias)?.name ?? alias;
}

interface MigrationInfo {
  status?: string;
  'error-desc'?: string;
  'total-time'?: number;
  ram?: { transferred?: number };
}

const ENDED = new Set(['completed', 'failed', 'cancelled']);

async function waitForMigration(qmp: QmpClient, what: string, timeoutMs: number): Promise<MigrationInfo> {
  const watch = qmp.watch('MIGRATION', { predicate: (event) => ENDED.has(String(event.data['status'])) });
  try {
    // The event may have fired before the watch: ask once, then wait.
    const now = await qmp.execute<MigrationInfo>('query-migrate');
    if (!now.status || !ENDED.has(now.status)) {
      try {
        await watch.next({ timeoutMs });
      } catch (error) {
        if (error instanceof TimeoutError) throw new TimeoutError(what, timeoutMs);
        throw error;
      }
    }
  } finally {
    watch.close();
  }
  return qmp.execute<MigrationInfo>('query-migrate');
}

async function enableEvents(qmp: QmpClient): Promise<void> {
  await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
}

export interface MigrationSocket {
  /** For `migrate`: unix:<path>. */
  uri: string;
  /** QEMU's connection, once it connects. */
  connection: Promise<Socket>;
  /** Stops listening and removes the private directory. */
  close(): Promise<void>;
}

/** Listens in `privateDir` (0700, made by the caller, removed by close) for QEMU's one connection. */
export async function listenForMigration(privateDir: string): Promise<MigrationSocket> {
  const path = join(privateDir, 'migration.sock');
  const server = createServer();
  const connection = new Promise<Socket>((resolve, reject) => {
    server.once('connection', (socket) => {
      // One stream, one peer: nobody else gets in once QEMU is connected.
      server.close();
      resolve(socket);
    });
    server.once('error', reject);
  });
  connection.catch(() => {});
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  return {
    uri: `unix:${path}`,
    connection,
    close: async () => {
      server.close();
      await rm(privateDir, { recursive: true, force: true });
    },
  };
}

export interface OutgoingResult {
  ms: number;
  /** RAM bytes QEMU sent (zero pages compress to almost nothing). */
  ramBytes: number;
}

/**
 * Streams the (stopped) guest's state to `uri`; resolves when QEMU reports
 * the migration complete. The caller reads the other end and must see it end.
 */
export async function migrateOut(qmp: QmpClient, uri: string, options: { timeoutMs: number }): Promise<OutgoingResult> {
  const started = performance.now();
  await enableEvents(qmp);
  // The guest is stopped: no reason to throttle (QEMU's default is 32 MiB/s).
  await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 64 * 1024 ** 3 });
  await qmp.execute('migrate', { uri });
  const info = await waitForMigration(qmp, 'saving the guest state', options.timeoutMs);
  if (info.status !== 'completed') throw new GuestFailedError(`QEMU could not save the guest state: ${info['error-desc'] ?? info.status ?? 'unknown error'}`);
  return { ms: Math.round(performance.now() - started), ramBytes: info.ram?.transferred ?? 0 };
}

/** Gives up an outgoing migration that has not completed; the guest stays where it is. */
export async function cancelMigration(qmp: QmpClient): Promise<void> {
  await qmp.execute('migrate_cancel').catch(() => {});
}

/**
 * Loads a state into a QEMU started with `-incoming defer`: tells it to read
 * channel descriptor `fd`, writes `source` into `channel`, and resolves when
 * QEMU reports the load complete (the guest stays paused until `cont`). If
 * `source` fails (a chunk that does not verify), that error is the one thrown:
 * QEMU then sees the stream end early, fails the load and exits.
 */
export async function migrateIn(qmp: QmpClient, fd: number, source: Readable, channel: Writable, options: { timeoutMs: number }): Promise<{ ms: number }> {
  const started = performance.now();
  await enableEvents(qmp);
  const ended = waitForMigration(qmp, 'loading the guest state', options.timeoutMs);
  ended.catch(() => {});
  await qmp.execute('migrate-incoming', { uri: `fd:${fd}` });
  let sourceError: unknown;
  const fed = pipeline(source, channel).catch((error: unknown) => {
    sourceError = error;
  });
  let info: MigrationInfo | undefined;
  let waitError: unknown;
  try {
    info = await ended;
  } catch (error) {
    waitError = error;
  }
  await Promise.race([fed, new Promise((resolve) => setTimeout(resolve, 1_000))]);
  if (sourceError instanceof PocketError) throw sourceError;
  if (waitError) throw waitError;
  if (info?.status !== 'completed')
    throw new GuestFailedError(`QEMU could not load the guest state: ${info?.['error-desc'] ?? info?.status ?? 'unknown error'}`);
  return { ms: Math.round(performance.now() - started) };
}

/** This QEMU's qemuVersionString(), from `--version` (no guest started). */
export async function probeQemuVersion(qemu: { system: string; prefixArgs?: string[]; env?: Record<string, string> }): Promise<string> {
  const { execa } = await import('execa');
  const result = await execa(qemu.system, [...(qemu.prefixArgs ?? []), '--version'], { reject: false, env: { ...qemu.env, LC_ALL: 'C' }, timeout: 15_000 });
  return parseQemuVersionOutput(String(result.stdout)) ?? `unknown (${String(result.stderr).split('\n')[0] ?? ''})`;
}
