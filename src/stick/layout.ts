// Where things live on a stick (docs/design.md, "The stick"). Every path on the
// stick is built here and nowhere else.
import { join } from 'node:path';

export interface StickLayout {
  root: string;
  /** Marks a directory as a pocketvm stick; holds the format version. */
  marker: string;
  payloadRoot: string;
  usersRoot: string;
  /** Runtime files of the session: lock, logs. On the stick, never the host. */
  runDir: string;
  lockFile: string;
  /** Per-host verdicts on hardware accelerators (keyed by a salted host hash). */
  acceleratorVerdicts: string;
  hostSalt: string;
}

export const STICK_FORMAT = 1;

export function stickLayout(root: string): StickLayout {
  const runDir = join(root, 'run');
  return {
    root,
    marker: join(root, '.pocketvm', 'stick.json'),
    payloadRoot: join(root, 'payload'),
    usersRoot: join(root, 'users'),
    runDir,
    lockFile: join(runDir, 'lock.json'),
    acceleratorVerdicts: join(root, '.pocketvm', 'accelerators.json'),
    hostSalt: join(root, '.pocketvm', 'host-salt'),
  };
}

/**
 * Several guests run at once (docs/guests.md, "Several at once"): what a
 * running guest owns is named for it. The guest named `default` keeps the
 * paths a stick had before, so an existing stick needs no migration; every
 * other guest gets its own (src/stick/session-locks.ts).
 */
export const PRIMARY_GUEST = 'default';

export function guestLogPaths(layout: StickLayout, guest: string): { console: string; qemu: string; session: string } {
  return {
    console: join(layout.runDir, `${guest}.console.log`),
    qemu: join(layout.runDir, `${guest}.qemu.log`),
    session: join(layout.runDir, guest === PRIMARY_GUEST ? 'session.log' : `${guest}.session.log`),
  };
}

/** Where one user's data for one guest lives: their own folder for the default guest, `guests/<guest>/` in it for any other. */
export function userGuestDir(layout: StickLayout, user: string, guest: string = PRIMARY_GUEST): string {
  const dir = join(layout.usersRoot, user);
  return guest === PRIMARY_GUEST ? dir : join(dir, 'guests', guest);
}

/** A user's registry for a guest (every layer but the defaults) and the defaults of the payload it boots. */
export function registryPaths(layout: StickLayout, user: string, guest: string, payload: string = guest): { file: string; defaultsFile: string } {
  return {
    file: join(userGuestDir(layout, user, guest), 'registry.sqlite'),
    defaultsFile: join(layout.payloadRoot, payload, 'registry.reg'),
  };
}

/**
 * A user's dynamic-table data for a guest: FIT contents and the copy-on-write
 * upper layer are the guest's own; the confirmed rules (the person's consent
 * to a host folder) are the user's, whichever guest asks.
 */
export function dyntablePaths(layout: StickLayout, user: string, guest: string = PRIMARY_GUEST): { filesDir: string; upperDir: string; confirmations: string } {
  const dir = userGuestDir(layout, user, guest);
  return { filesDir: join(dir, 'files'), upperDir: join(dir, 'upper'), confirmations: join(layout.usersRoot, user, 'tables-confirmed.json') };
}

/**
 * A user's system overlay for an image guest (docs/images.md): every change
 * they make to the whole system, copy-on-write over the guest's read-only base.
 */
export function systemOverlayPath(layout: StickLayout, user: string, guest: string): string {
  return join(layout.usersRoot, user, 'disks', `${guest}.system.qcow2`);
}

/** Where the guests' own records live (src/guests/guest-store.ts): one folder per guest. */
export function guestsRoot(layout: StickLayout): string {
  return join(layout.root, 'guests');
}

/** The owner, grants and per-user quotas (src/guests/guest-admins.ts; the session reads the quotas). */
export function adminsFile(layout: StickLayout): string {
  return join(guestsRoot(layout), 'admins.json');
}

/**
 * The image store (docs/image-store.md): imported disk images, each a sparse
 * qcow2 named by the sha256 of its guest-visible content, their catalog, and
 * the folder where an import writes before it is renamed into the store.
 */
export function imageStorePaths(layout: StickLayout): { root: string; store: string; incoming: string; catalog: string } {
  const root = join(layout.root, 'images');
  return { root, store: join(root, 'store'), incoming: join(root, 'incoming'), catalog: join(root, 'catalog.sqlite') };
}
