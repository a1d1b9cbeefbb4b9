// What state each guest is really in: the persisted record reconciled with
// what runs (the stick's session lock), what a dead launcher left half-done
// (an op in state.json whose launcher is gone), what a suspend saved, and
// whether the guest's files are there. `guest list` is this for every guest;
// one guest that cannot be read is listed as unavailable with the reason,
// never a list that fails.
import { readdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { savedStatePaths } from '../session/saved-state.ts';
import { guestsRoot, type StickLayout } from '../stick/layout.ts';
import { type LockHolder, processAlive } from '../stick/lock.ts';
import { liveSessions } from '../stick/session-locks.ts';
import { parseConfig } from './guest-config.ts';
import { describeSource, type GuestSourceRef, sourceDriver, sourceKey } from './guest-source.ts';
import type { GuestState } from './guest-states.ts';
import {
  type Actor,
  actorAlive,
  GUEST_NAME_PATTERN,
  type GuestRecord,
  guestPaths,
  lockGuest,
  readInstall,
  readJson,
  scratchPid,
  type StateRecord,
  writeState,
} from './guest-store.ts';

export interface GuestView {
  name: string;
  state: GuestState;
  /** Absent for a guest whose record cannot be read. */
  source?: GuestSourceRef;
  /** A launcher changing the guest right now. */
  busy?: { command: string; pid: number };
  /** Why it is in this state when that is not obvious (unavailable, incomplete, reconciled). */
  reason?: string;
  /** The record said otherwise; what it said (and, if the stick could be written, the record now says `state`). */
  reconciledFrom?: GuestState;
  /** Changes staged and not committed. */
  staged: boolean;
  /** The user whose session runs it. */
  user?: string;
  /** A payload on the stick with no guest record (a stick made before guests): run --guest NAME boots it. */
  implicit?: boolean;
}

/** The live sessions on the stick by the guest each runs (several run at once: src/stick/session-locks.ts). */
async function liveSessionsByGuest(layout: StickLayout): Promise<Map<string, LockHolder>> {
  try {
    return new Map((await liveSessions(layout)).map((session) => [session.guest, session.holder]));
  } catch {
    return new Map();
  }
}

function runningState(holder: LockHolder): GuestState {
  if (holder.state === 'stopping') return 'shutting_down';
  // QEMU is gone; the session still closes what the platform opened (registry, namespace, disks).
  if (holder.state === 'down') return 'down';
  // Starting: QEMU is up, paused or booting, the guest not yet ready.
  if (holder.state === 'ready') return 'running';
  return 'ready';
}

async function users(layout: StickLayout): Promise<string[]> {
  try {
    return (await readdir(layout.usersRoot, { withFileTypes: true })).filter((entry) => entry.isDirectory()).map((entry) => entry.name);
  } catch {
    return [];
  }
}

/** The users who have a suspended `guest` on the stick. */
export async function suspendedBy(layout: StickLayout, guest: string): Promise<string[]> {
  const found: string[] = [];
  for (const user of await users(layout)) {
    try {
      if (existsSync(savedStatePaths(layout, user, guest).file)) found.push(user);
    } catch {
      // a folder that is not a user name
    }
  }
  return found;
}

interface Context {
  layout: StickLayout;
  sessions: Map<string, LockHolder>;
  /** Persist a reconciled state (off for read-only sticks and pure reads). */
  repair: boolean;
}

/** Reads one guest; never throws for what is on the stick (that is `unavailable`). */
async function viewOne(context: Context, name: string): Promise<GuestView> {
  const { layout } = context;
  const session = context.sessions.get(name);
  const paths = guestPaths(layout, name);
  let record: GuestRecord | undefined;
  let stateRecord: StateRecord | undefined;
  try {
    record = await readJson<GuestRecord>(paths.record);
    if (!record) return { name, state: 'unavailable', reason: `${paths.record} is missing`, staged: false };
    parseConfig(record.config, paths.record);
  } catch (error) {
    return { name, state: 'unavailable', reason: `${paths.record} cannot be read: ${(error as Error).message}`, staged: false };
  }
  try {
    stateRecord = await readJson<StateRecord>(paths.state);
  } catch {
    stateRecord = undefined; // half-written by hand or damaged: derived below from what is installed
  }
  const staged = existsSync(paths.staged);
  const base = { name, source: record.source, staged };
  const install = await readInstall(paths).catch(() => undefined);
  const recorded: GuestState = stateRecord?.state ?? (install ? 'installed' : 'configured');

  // A change under way: live → as recorded, busy; dead → it was interrupted.
  const op: Actor | undefined = stateRecord?.op;
  if (op && actorAlive(op)) return { ...base, state: recorded, busy: { command: op.command, pid: op.pid } };
  if (op)
    return {
      ...base,
      state: 'incomplete',
      reason: `launcher ${op.command} (pid ${op.pid}) was interrupted`,
      ...(recorded === 'incomplete' ? {} : { reconciledFrom: recorded }),
    };

  if (!(await sourceDriver(record.source, record.name).present(layout, sourceKey(record.source))))
    return { ...base, state: 'unavailable', reason: `its source, ${describeSource(record.source)}, is not on the stick` };

  if (session) return { ...base, state: runningState(session), ...(session.user ? { user: session.user } : {}) };

  // Not running. Anything the record says about a running guest is stale.
  let state: GuestState = recorded;
  let reason: string | undefined;
  if (state === 'ready' || state === 'running' || state === 'shutting_down' || state === 'down') {
    state = install ? 'installed' : 'incomplete';
    reason = `no session runs it: the launcher that ran it ended without saying so`;
  } else if (state === 'installed' && !install) {
    state = 'incomplete';
    reason = `${paths.install} is missing`;
  }
  if (state === 'installed' && (await suspendedBy(layout, name)).length > 0) {
    // Derived, never persisted: the saved state file is the truth.
    return { ...base, state: 'suspended', ...(recorded !== 'installed' ? { reconciledFrom: recorded } : {}) };
  }
  if (state !== recorded && context.repair) await persistRepair(layout, name, recorded, state);
  return { ...base, state, ...(state !== recorded ? { reconciledFrom: recorded } : {}), ...(reason ? { reason } : {}) };
}

/**
 * Writes a reconciled state under the guest's lock, if nobody else holds it
 * and the record still says what was read. Best effort: a list on a
 * read-only stick, or while another launcher changes the guest, still answers.
 */
async function persistRepair(layout: StickLayout, name: string, recorded: GuestState, state: GuestState): Promise<void> {
  let lock;
  try {
    lock = await lockGuest(layout, name, 'guest list');
  } catch {
    return;
  }
  try {
    const paths = guestPaths(layout, name);
    const current = await readJson<StateRecord>(paths.state).catch(() => undefined);
    if ((current?.state ?? recorded) === recorded && !current?.op) await writeState(paths, state);
  } catch {
    // read-only or gone: the next launcher repairs it
  } finally {
    await lock.release().catch(() => {});
  }
}

/**
 * Removes what dead launchers left: a guest half-created or half-cloned
 * (`.new-*`), half-deleted (`.gone-*`). Best effort: a read-only stick keeps them.
 */
async function sweep(layout: StickLayout): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(guestsRoot(layout));
  } catch {
    return;
  }
  for (const entry of entries) {
    // A dead launcher's guest lock: taking it over and letting it go removes it (guest-store.ts takes over dead holders only).
    const locked = /^\.lock-([a-z0-9-]+)$/.exec(entry)?.[1];
    if (locked !== undefined && GUEST_NAME_PATTERN.test(locked)) {
      await lockGuest(layout, locked, 'guest list').then(
        (lock) => lock.release(),
        () => {},
      );
      continue;
    }
    const pid = scratchPid(entry);
    if (pid !== undefined && (pid === process.pid ? false : !processAlive(pid)))
      await rm(join(guestsRoot(layout), entry), { recursive: true, force: true }).catch(() => {});
  }
}

/** One guest, reconciled; `undefined` when there is no such guest. */
export async function viewGuest(layout: StickLayout, name: string, options: { repair?: boolean } = {}): Promise<GuestView | undefined> {
  if (!existsSync(guestPaths(layout, name).dir)) return undefined;
  return viewOne({ layout, sessions: await liveSessionsByGuest(layout), repair: options.repair ?? true }, name);
}

/** Every guest on the stick, reconciled, sorted by name; payloads without a record are listed as implicit guests. */
export async function listGuests(layout: StickLayout, options: { repair?: boolean } = {}): Promise<GuestView[]> {
  const repair = options.repair ?? true;
  if (repair) await sweep(layout);
  const context: Context = { layout, sessions: await liveSessionsByGuest(layout), repair };
  let names: string[] = [];
  try {
    names = (await readdir(guestsRoot(layout))).filter((entry) => GUEST_NAME_PATTERN.test(entry));
  } catch {
    // no guests/ yet
  }
  const views = await Promise.all(names.map((name) => viewOne(context, name)));
  let payloads: string[] = [];
  try {
    payloads = (await readdir(layout.payloadRoot)).filter((entry) => GUEST_NAME_PATTERN.test(entry) && !names.includes(entry));
  } catch {
    // no payloads
  }
  for (const name of payloads) {
    if (!(await sourceDriver({ kind: 'payload', name }).present(layout, name))) continue;
    const session = context.sessions.get(name);
    const running = session !== undefined;
    const suspended = !running && (await suspendedBy(layout, name)).length > 0;
    views.push({
      name,
      state: session ? runningState(session) : suspended ? 'suspended' : 'installed',
      source: { kind: 'payload', name },
      staged: false,
      implicit: true,
    });
  }
  return views.sort((a, b) => a.name.localeCompare(b.name));
}
