// The guest commands that change what is on the stick: create, the staged
// configuration (stage, verify, commit, revert), install, uninstall, delete,
// clone. Each takes the guest's lock, checks the state table
// (guest-states.ts), and moves through steps that a kill at any point leaves
// in a state `guest list` shows and the next command finishes:
//
// - create and clone build the guest in a scratch folder and rename it into
//   place: it exists whole or not at all (a dead launcher's scratch folder is
//   swept by the next list);
// - install, uninstall and delete first record `incomplete` with who is at it;
//   a launcher that dies leaves `incomplete`, which install, uninstall and
//   delete all accept;
// - a configuration is committed by one atomic replace of guest.json.
//
// The failpoints name every step for the fault-injection tests.
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { GuestConfigError, GuestStateError } from '../errors.ts';
import { personalDiskPath } from '../auth/users.ts';
import { syncDirectory } from '../primitives/atomic-replace.ts';
import { failpoint } from '../primitives/failpoint.ts';
import { diskGenerationPath } from '../session/disk-generation.ts';
import { savedStatePaths } from '../session/saved-state.ts';
import { guestsRoot, PRIMARY_GUEST, type StickLayout, userGuestDir } from '../stick/layout.ts';
import { type GuestConfig, verifyConfig } from './guest-config.ts';
import { resolveSource, sourceDriver, sourceKey, type InstallRecord } from './guest-source.ts';
import { requireState, type GuestCommand } from './guest-states.ts';
import {
  checkGuestName,
  type GuestLock,
  type GuestRecord,
  guestPaths,
  lockGuest,
  me,
  readInstall,
  readJson,
  scratchDir,
  writeJson,
  writeState,
} from './guest-store.ts';
import { type GuestView, viewGuest } from './guest-view.ts';

/** The guest `name` as it is now, or the typed refusal for a name with no guest. */
export async function requireGuest(layout: StickLayout, name: string): Promise<GuestView> {
  checkGuestName(name);
  const view = await viewGuest(layout, name, { repair: false });
  if (view) return view;
  const payload = await sourceDriver({ kind: 'payload', name }).present(layout, name);
  throw new GuestStateError(
    payload ? `guest ${name} has no record yet: it is the payload ${name} of a stick made before guests` : `there is no guest named ${name} on ${layout.root}`,
    {
      hint: payload ? `make its record with: launcher guest create ${name} --from ${name}` : 'launcher guest list shows the guests',
      details: { reason: 'missing', guest: name },
    },
  );
}

/** Runs `work` holding the guest's lock, with the guest checked against `command`'s accepted states. */
async function withGuest<T>(layout: StickLayout, name: string, command: GuestCommand, work: (view: GuestView, lock: GuestLock) => Promise<T>): Promise<T> {
  await requireGuest(layout, name);
  const lock = await lockGuest(layout, name, command);
  try {
    // Read again under the lock: another launcher may have changed it between.
    const view = await requireGuest(layout, name);
    if (view.busy)
      throw new GuestStateError(`guest ${name} is being changed right now by launcher ${view.busy.command} (pid ${view.busy.pid})`, {
        hint: 'wait for it to finish, then try again',
        details: { reason: 'busy', guest: name, holder: view.busy },
      });
    requireState(command, name, view.state, view.reason);
    return await work(view, lock);
  } finally {
    await lock.release();
  }
}

async function readRecord(layout: StickLayout, name: string): Promise<GuestRecord> {
  const record = await readJson<GuestRecord>(guestPaths(layout, name).record);
  if (!record) throw new GuestStateError(`guest ${name} has no configuration`, { details: { reason: 'missing', guest: name } });
  return record;
}

/** Create and clone: a new guest's name must be free (exit 30, reason exists). */
function refuseTakenName(dir: string, name: string): void {
  if (existsSync(dir))
    throw new GuestStateError(`there is a guest named ${name} already`, {
      hint: 'pick another name, or delete it first',
      details: { reason: 'exists', guest: name },
    });
}

export async function createGuest(layout: StickLayout, name: string, from: string): Promise<GuestRecord> {
  checkGuestName(name);
  const lock = await lockGuest(layout, name, 'create');
  try {
    const paths = guestPaths(layout, name);
    refuseTakenName(paths.dir, name);
    const source = await resolveSource(layout, from);
    const initial = await sourceDriver(source, name).initial(layout, sourceKey(source));
    const record: GuestRecord = {
      format: 1,
      name,
      source,
      config: initial.config,
      createdAt: new Date().toISOString(),
      ...(initial.fromDescriptor ? { fromDescriptor: initial.fromDescriptor } : {}),
    };
    const scratch = scratchDir(layout, 'new', name);
    await mkdir(scratch, { recursive: true });
    failpoint('create:scratch');
    const inside = { ...paths, dir: scratch, record: `${scratch}/guest.json`, state: `${scratch}/state.json` };
    await writeJson(inside.record, record);
    await writeState(inside, 'configured');
    failpoint('create:written');
    await rename(scratch, paths.dir);
    await syncDirectory(guestsRoot(layout));
    failpoint('create:renamed');
    return record;
  } finally {
    await lock.release();
  }
}

/** Applies one change (set, add, remove) to the staged configuration. */
export async function stageChange(layout: StickLayout, name: string, change: (config: GuestConfig) => GuestConfig): Promise<GuestConfig> {
  return withGuest(layout, name, 'config-stage', async () => {
    const paths = guestPaths(layout, name);
    const base = (await readJson<GuestConfig>(paths.staged)) ?? (await readRecord(layout, name)).config;
    const next = change(base);
    await writeJson(paths.staged, next);
    return next;
  });
}

export interface Verification {
  /** The configuration checked: the staged one, or the committed one when nothing is staged. */
  config: GuestConfig;
  staged: boolean;
  problems: string[];
}

export async function verifyGuest(layout: StickLayout, name: string): Promise<Verification> {
  const view = await requireGuest(layout, name);
  requireState('config-stage', name, view.state, view.reason);
  const paths = guestPaths(layout, name);
  const staged = await readJson<GuestConfig>(paths.staged);
  const record = await readRecord(layout, name);
  const config = staged ?? record.config;
  const needs = await sourceDriver(record.source, record.name).needs(layout, sourceKey(record.source));
  return { config, staged: staged !== undefined, problems: verifyConfig(config, needs) };
}

export function problemsError(name: string, problems: string[], committing: boolean): GuestConfigError {
  return new GuestConfigError(
    `guest ${name}'s staged configuration has ${problems.length} problem${problems.length === 1 ? '' : 's'}: ${problems.join('; ')}${committing ? '; nothing was committed' : ''}`,
    {
      hint: `fix them with guest config ${name} set|add|remove, or drop the changes with guest config ${name} revert`,
      details: { reason: 'verify', problems },
    },
  );
}

/** Verify, then replace the committed configuration with the staged one in one atomic step. */
export async function commitGuest(layout: StickLayout, name: string): Promise<{ committed: boolean; config: GuestConfig; appliesAtNextBoot: boolean }> {
  return withGuest(layout, name, 'config-commit', async (view) => {
    const paths = guestPaths(layout, name);
    const record = await readRecord(layout, name);
    const staged = await readJson<GuestConfig>(paths.staged);
    if (!staged) return { committed: false, config: record.config, appliesAtNextBoot: false };
    const problems = verifyConfig(staged, await sourceDriver(record.source, record.name).needs(layout, sourceKey(record.source)));
    if (problems.length > 0) throw problemsError(name, problems, true);
    await writeJson(paths.record, { ...record, config: staged });
    failpoint('commit:written');
    await rm(paths.staged, { force: true });
    return { committed: true, config: staged, appliesAtNextBoot: view.state === 'ready' || view.state === 'running' };
  });
}

export async function revertGuest(layout: StickLayout, name: string): Promise<{ reverted: boolean }> {
  return withGuest(layout, name, 'config-stage', async () => {
    const paths = guestPaths(layout, name);
    const had = existsSync(paths.staged);
    await rm(paths.staged, { force: true });
    return { reverted: had };
  });
}

export async function installGuest(layout: StickLayout, name: string): Promise<InstallRecord> {
  return withGuest(layout, name, 'install', async () => {
    const paths = guestPaths(layout, name);
    const record = await readRecord(layout, name);
    await writeState(paths, 'incomplete', me('install'));
    failpoint('install:marked');
    const files = await sourceDriver(record.source, record.name).install(layout, sourceKey(record.source));
    failpoint('install:verified');
    const install: InstallRecord = { source: record.source, files, installedAt: new Date().toISOString() };
    await writeJson(paths.install, install);
    failpoint('install:pinned');
    await writeState(paths, 'installed');
    failpoint('install:done');
    return install;
  });
}

/** The users who have a personal disk, disk generation or saved state for `guest`. */
export async function usersWithData(layout: StickLayout, guest: string): Promise<string[]> {
  let names: string[] = [];
  try {
    names = await readdir(layout.usersRoot);
  } catch {
    return [];
  }
  const found: string[] = [];
  for (const user of names) {
    try {
      const files = userDataFiles(layout, user, guest);
      if (files.some((file) => existsSync(file))) found.push(user);
    } catch {
      // not a user folder
    }
  }
  return found;
}

function userDataFiles(layout: StickLayout, user: string, guest: string): string[] {
  const state = savedStatePaths(layout, user, guest);
  const files = [personalDiskPath(layout, user, guest), diskGenerationPath(layout, user, guest), state.file, state.partial];
  // A guest's own registry, files/ and upper/ (the default guest's are the user's own, kept).
  return guest === PRIMARY_GUEST ? files : [...files, userGuestDir(layout, user, guest)];
}

async function removeUserData(layout: StickLayout, guest: string): Promise<void> {
  for (const user of await usersWithData(layout, guest))
    for (const file of userDataFiles(layout, user, guest)) await rm(file, { recursive: true, force: true });
}

function refuseUserData(name: string, users: string[], command: string): GuestStateError {
  return new GuestStateError(
    `guest ${command} ${name} would delete the personal disk${users.length === 1 ? '' : 's'} of ${users.join(', ')} for it (their files in the guest); nothing was changed`,
    { hint: `say so with: launcher guest ${command} ${name} --yes`, details: { reason: 'user-data', guest: name, users } },
  );
}

/** Removes the installed environment and every user's disk for it; the configuration stays. */
export async function uninstallGuest(layout: StickLayout, name: string, options: { yes?: boolean } = {}): Promise<{ removedUserData: string[] }> {
  return withGuest(layout, name, 'uninstall', async () => {
    const paths = guestPaths(layout, name);
    const users = await usersWithData(layout, name);
    if (users.length > 0 && !options.yes) throw refuseUserData(name, users, 'uninstall');
    await writeState(paths, 'incomplete', me('uninstall'));
    failpoint('uninstall:marked');
    await removeUserData(layout, name);
    failpoint('uninstall:user-data');
    await rm(paths.install, { force: true });
    failpoint('uninstall:unpinned');
    await writeState(paths, 'configured');
    return { removedUserData: users };
  });
}

/** Removes the guest: its users' disks for it, then its folder by one rename out of the way. */
export async function deleteGuest(layout: StickLayout, name: string, options: { yes?: boolean } = {}): Promise<{ removedUserData: string[] }> {
  return withGuest(layout, name, 'delete', async () => {
    const paths = guestPaths(layout, name);
    const users = await usersWithData(layout, name);
    if (users.length > 0 && !options.yes) throw refuseUserData(name, users, 'delete');
    await writeState(paths, 'incomplete', me('delete'));
    failpoint('delete:marked');
    await removeUserData(layout, name);
    failpoint('delete:user-data');
    const gone = scratchDir(layout, 'gone', name);
    await rename(paths.dir, gone);
    await syncDirectory(guestsRoot(layout));
    failpoint('delete:renamed');
    await rm(gone, { recursive: true, force: true });
    return { removedUserData: users };
  });
}

/**
 * A new installed guest with SRC's committed configuration, sharing its
 * source (the payload or base image is not copied: clone is as fast as two
 * small files). No user's personal disk is copied: each user of NEW starts
 * with a fresh one, so a clone never carries one person's files to another.
 */
export async function cloneGuest(layout: StickLayout, from: string, name: string): Promise<GuestRecord> {
  checkGuestName(name);
  return withGuest(layout, from, 'clone', async () => {
    const lock = await lockGuest(layout, name, 'clone');
    try {
      const paths = guestPaths(layout, name);
      refuseTakenName(paths.dir, name);
      const source = await readRecord(layout, from);
      const install = await readInstall(guestPaths(layout, from));
      if (!install) throw new GuestStateError(`guest ${from} is not installed`, { details: { reason: 'state', guest: from } });
      const record: GuestRecord = { format: 1, name, source: source.source, config: source.config, createdAt: new Date().toISOString() };
      const scratch = scratchDir(layout, 'new', name);
      await mkdir(scratch, { recursive: true });
      failpoint('clone:scratch');
      const inside = { ...paths, dir: scratch, record: `${scratch}/guest.json`, state: `${scratch}/state.json`, install: `${scratch}/install.json` };
      await writeJson(inside.record, record);
      await writeJson(inside.install, { ...install, clonedFrom: from });
      await writeState(inside, 'installed');
      failpoint('clone:written');
      await rename(scratch, paths.dir);
      await syncDirectory(guestsRoot(layout));
      failpoint('clone:renamed');
      return record;
    } finally {
      await lock.release();
    }
  });
}
