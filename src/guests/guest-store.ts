// A guest's records on the stick, and the lock that lets one launcher change
// a guest at a time:
//
//   guests/<name>/guest.json    the committed configuration and its source
//   guests/<name>/state.json    the persisted state, and the change under way (op)
//   guests/<name>/staged.json   configuration changes not yet committed
//   guests/<name>/install.json  what install pinned (absent: not installed)
//   guests/.lock-<name>         held while a launcher changes the guest
//   guests/.new-<name>-…        a guest being created or cloned (renamed into place whole)
//   guests/.gone-<name>-…       a guest being deleted (renamed out of the way first)
//
// Every file is replaced atomically (src/primitives/atomic-replace.ts); a
// folder appears or disappears by one rename, so a reader (guest list) finds
// a guest whole or not at all.
import { randomBytes } from 'node:crypto';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { GuestStateError, UsageError } from '../errors.ts';
import { replaceFile } from '../primitives/atomic-replace.ts';
import { readJson } from '../primitives/read-json.ts';
import { guestsRoot, type StickLayout } from '../stick/layout.ts';
import { type Actor, actorAlive, me, takeOver } from '../stick/lock-takeover.ts';
import type { DescriptorConfig } from './described-config.ts';
import type { GuestConfig } from './guest-config.ts';
import type { GuestSourceRef, InstallRecord } from './guest-source.ts';
import type { GuestState } from './guest-states.ts';

// The lock holder and its take-over live with the stick's locks (the sizing lock uses them too).
export { type Actor, actorAlive, me } from '../stick/lock-takeover.ts';

export const GUEST_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/;

export function checkGuestName(name: string): void {
  if (!GUEST_NAME_PATTERN.test(name))
    throw new UsageError(`"${name}" is not a guest name`, 'guest names are 1 to 32 lower-case letters, digits and -, starting with a letter or digit');
}

export interface GuestRecord {
  format: 1;
  name: string;
  source: GuestSourceRef;
  config: GuestConfig;
  createdAt: string;
  /** A guest made from an imported image: what its first configuration took from the machine's descriptor. */
  fromDescriptor?: DescriptorConfig;
}

export interface StateRecord {
  state: GuestState;
  since: string;
  /** The change under way; left behind by a launcher that died in it. */
  op?: Actor;
}

export interface GuestPaths {
  dir: string;
  record: string;
  state: string;
  staged: string;
  install: string;
  lock: string;
}

export function guestPaths(layout: StickLayout, name: string): GuestPaths {
  const dir = join(guestsRoot(layout), name);
  return {
    dir,
    record: join(dir, 'guest.json'),
    state: join(dir, 'state.json'),
    staged: join(dir, 'staged.json'),
    install: join(dir, 'install.json'),
    lock: join(guestsRoot(layout), `.lock-${name}`),
  };
}

/** A folder name no other writer uses: `.new-<name>-<pid>-<hex>` or `.gone-…`. */
export function scratchDir(layout: StickLayout, kind: 'new' | 'gone', name: string): string {
  return join(guestsRoot(layout), `.${kind}-${name}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** The pid in a scratch folder's name, to tell a live writer's from a dead one's. */
export function scratchPid(entry: string): number | undefined {
  const match = /^\.(?:new|gone)-[a-z0-9-]+-(\d+)-[0-9a-f]{8}$/.exec(entry);
  return match ? Number(match[1]) : undefined;
}

export { readJson };

export const writeJson = (path: string, value: unknown): Promise<void> => replaceFile(path, `${JSON.stringify(value, null, 2)}\n`);

export async function writeState(paths: GuestPaths, state: GuestState, op?: Actor): Promise<void> {
  const record: StateRecord = { state, since: new Date().toISOString(), ...(op ? { op } : {}) };
  await writeJson(paths.state, record);
}

export async function readInstall(paths: GuestPaths): Promise<InstallRecord | undefined> {
  return readJson<InstallRecord>(paths.install);
}

/** Held while one launcher changes one guest; a dead holder's lock is taken over. */
export class GuestLock {
  readonly #path: string;
  #held = true;
  constructor(path: string) {
    this.#path = path;
  }
  async release(): Promise<void> {
    if (!this.#held) return;
    this.#held = false;
    await rm(this.#path, { force: true });
  }
}

export async function lockGuest(layout: StickLayout, name: string, command: string): Promise<GuestLock> {
  const paths = guestPaths(layout, name);
  await mkdir(guestsRoot(layout), { recursive: true });
  const actor = me(command);
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const handle = await open(paths.lock, 'wx');
      try {
        await handle.writeFile(JSON.stringify(actor));
        await handle.sync();
      } finally {
        await handle.close();
      }
      return new GuestLock(paths.lock);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      let holder: Actor | undefined;
      try {
        holder = await readJson<Actor>(paths.lock);
      } catch {
        holder = undefined; // half-written by a launcher that died writing it
      }
      if (holder && actorAlive(holder)) throw busy(name, holder);
      await takeOver(paths.lock, holder);
    }
  }
  throw new GuestStateError(`guest ${name} is being changed by another launcher`, { hint: 'try again in a moment', details: { reason: 'busy', guest: name } });
}

export function busy(name: string, holder: Actor): GuestStateError {
  return new GuestStateError(
    `guest ${name} is being changed right now by launcher ${holder.command} (pid ${holder.pid} on ${holder.hostname}, since ${holder.startedAt})`,
    {
      hint: 'wait for it to finish, then try again; guest list shows the guest meanwhile',
      details: { reason: 'busy', guest: name, holder },
    },
  );
}
