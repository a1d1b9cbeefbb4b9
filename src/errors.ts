// Typed errors shared by every module. Each carries the one line a person
// needs (what happened, what to do) and maps to a documented exit code, so the
// CLI never has to guess how bad a failure is. The table lives in
// docs/exit-codes.md; test/docs/exit-codes.test.ts keeps the two in step.

export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  qemuMissing: 3,
  payload: 4,
  stickLocked: 5,
  guestFailed: 6,
  timeout: 7,
  noSession: 8,
  stick: 9,
  tampered: 10,
  auth: 11,
  registry: 12,
  registryCorrupt: 13,
  hostTooSmall: 14,
  stickRemoved: 15,
  hostWrites: 16,
  savedState: 17,
  systemImage: 18,
  display: 19,
  files: 20,
  share: 22,
  filesPassphrase: 23,
  filesLocked: 24,
  guestState: 30,
  guestConfig: 31,
  notPermitted: 32,
  severalGuests: 33,
  hostBusy: 34,
  memoryQuota: 35,
  diskQuota: 36,
  imageFormat: 40,
  imageMissing: 41,
  imageInUse: 42,
  imageInspect: 43,
  imageStore: 44,
  captureSource: 45,
  captureCopy: 46,
  captureBootCheck: 47,
  imageDeploy: 48,
  imageCustomize: 49,
  guestFromImage: 50,
  imageGuestBase: 51,
  adaptRefused: 52,
  adaptFailed: 53,
  exportSource: 54,
  exportWrite: 55,
  importSource: 59,
  importDisk: 60,
  interrupted: 130,
} as const;

export type ExitCodeName = keyof typeof ExitCode;

export class PocketError extends Error {
  readonly exit: ExitCodeName;
  /** What the person can do about it; printed after the message. */
  readonly hint: string | undefined;
  /** Extra machine-readable facts for --json output and logs. */
  readonly details: Record<string, unknown>;

  constructor(exit: ExitCodeName, message: string, options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.exit = exit;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }

  get exitCode(): number {
    return ExitCode[this.exit];
  }
}

export class UsageError extends PocketError {
  constructor(message: string, hint?: string) {
    super('usage', message, hint === undefined ? {} : { hint });
  }
}

export class QemuMissingError extends PocketError {
  constructor(binary: string, hint: string) {
    super('qemuMissing', `QEMU is not installed: ${binary} was not found`, { hint, details: { binary } });
  }
}

/** A payload file is missing, unreadable, or its manifest is invalid. */
export class PayloadError extends PocketError {
  constructor(message: string, options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('payload', message, options);
  }
}

export class StickLockedError extends PocketError {
  constructor(holder: string, lockPath: string) {
    super('stickLocked', `this stick is in use by ${holder}`, {
      hint: `stop that session first (launcher stop), or wait for it to finish; lock: ${lockPath}`,
      details: { holder, lockPath },
    });
  }
}

export class StickError extends PocketError {
  constructor(message: string, hint?: string) {
    super('stick', message, hint === undefined ? {} : { hint });
  }
}

/** QEMU died, refused its arguments, or the guest never came up. */
export class GuestFailedError extends PocketError {
  constructor(message: string, options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('guestFailed', message, options);
  }
}

export class TimeoutError extends PocketError {
  constructor(what: string, ms: number, hint?: string) {
    super('timeout', `${what} did not finish within ${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`, {
      ...(hint === undefined ? {} : { hint }),
      details: { timeoutMs: ms },
    });
  }
}

export class NoSessionError extends PocketError {
  constructor(stickRoot: string) {
    super('noSession', `no guest is running from ${stickRoot}`, {
      hint: 'start one with: launcher run --detach',
      details: { stickRoot },
    });
  }
}

/** Files of a built stick differ from its manifest (.pocketvm/manifest.json). */
export class StickTamperedError extends PocketError {
  constructor(message: string, options: { hint?: string; details?: Record<string, unknown> } = {}) {
    super('tampered', message, options);
  }
}

/**
 * Login or a user's files failed: wrong passphrase (or still backing off), an
 * unknown user, a corrupt user.json, a personal disk whose key does not match.
 */
export class AuthError extends PocketError {
  constructor(message: string, options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('auth', message, options);
  }
}

/**
 * The guest registry refused input: a malformed `.reg` file (the message names
 * the line), a value of the wrong type, a key or value over a limit, a value
 * or key that does not exist. `details.reason` says which.
 */
export class RegistryError extends PocketError {
  constructor(message: string, options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('registry', message, options);
  }
}

/** A value's data does not match its type, or a well-known value has the wrong type. */
export class RegistryTypeError extends RegistryError {
  constructor(message: string, options: { hint?: string; details?: Record<string, unknown> } = {}) {
    super(message, { ...options, details: { reason: 'type', ...options.details } });
  }
}

/** A key path, value name or value over a documented limit (docs/registry.md). */
export class RegistryLimitError extends RegistryError {
  constructor(message: string, options: { hint?: string; details?: Record<string, unknown> } = {}) {
    super(message, { ...options, details: { reason: 'limit', ...options.details } });
  }
}

/** A `.reg` file that cannot be read; `line` is 1-based. Nothing was imported. */
export class RegFileError extends RegistryError {
  readonly line: number;
  /** The message without the file, line and "nothing was imported". */
  readonly problem: string;
  constructor(line: number, problem: string, source?: string) {
    super(`${source ?? '.reg file'} line ${line}: ${problem}; nothing was imported`, {
      details: { reason: 'reg-file', line, ...(source ? { file: source } : {}) },
    });
    this.line = line;
    this.problem = problem;
  }
}

/** The registry database is damaged and no last good copy could be restored. */
export class RegistryCorruptError extends PocketError {
  constructor(message: string, options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('registryCorrupt', message, options);
  }
}

/** This host cannot spare what the guest needs at least without starving itself (src/session/sizing.ts). */
export class HostTooSmallError extends PocketError {
  constructor(message: string, options: { hint?: string; details?: Record<string, unknown> } = {}) {
    super('hostTooSmall', message, options);
  }
}

/** The stick was pulled out while a guest ran from it: the guest was stopped at once. */
export class StickRemovedError extends PocketError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('stickRemoved', message, { details });
  }
}

/** `launcher audit` found files written on the host (or could not watch the session). */
export class HostWritesError extends PocketError {
  constructor(message: string, options: { hint?: string; details?: Record<string, unknown> } = {}) {
    super('hostWrites', message, options);
  }
}

/**
 * A suspended guest's saved state (users/<name>/state/<guest>.vmstate) was
 * not resumed and is still on the stick: it cannot be resumed on this PC
 * (another QEMU, accelerator or memory size; it does not open with this
 * user's key; it is damaged or truncated) and nobody chose between a cold
 * boot and keeping it, or --keep-state kept it, or loading it failed.
 * `details.reason` says which.
 */
export class SavedStateError extends PocketError {
  constructor(message: string, options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('savedState', message, options);
  }
}

/**
 * An image guest's system cannot be used (docs/images.md): its base image is
 * missing or not the one its manifest names (`reason` `missing`, `corrupt`),
 * or a user's overlay was made over another base that is no longer on the
 * stick (`other-base`), or the overlay itself is damaged (`overlay`).
 */
export class SystemImageError extends PocketError {
  constructor(message: string, options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('systemImage', message, options);
  }
}

/**
 * A guest command met a guest in a state it does not accept (src/guests/guest-states.ts):
 * the message names the guest, its current state and the states the command
 * accepts. Also: no such guest (`reason: missing`), a name already taken
 * (`reason: exists`), a guest another launcher is changing (`reason: busy`).
 */
export class GuestStateError extends PocketError {
  constructor(message: string, options: { hint?: string; details?: Record<string, unknown> } = {}) {
    super('guestState', message, options);
  }
}

/**
 * A guest's configuration refused input (a property, value or resource that
 * does not exist or is out of bounds; nothing was staged), or `guest config
 * verify`/`commit` found problems in the staged configuration: `details.problems`
 * lists every one, and nothing was committed.
 */
export class GuestConfigError extends PocketError {
  constructor(message: string, options: { hint?: string; details?: Record<string, unknown> } = {}) {
    super('guestConfig', message, options);
  }
}

/**
 * A signed-in user asked for something their rights on the stick's guests do
 * not cover (src/guests/guest-admins.ts): a guest administrator acting on a
 * guest not granted to them, or beyond the rights granted, or on the
 * stick's global configuration; or nobody signed in on a stick with an owner.
 * `details.reason` says which (`right`, `global`, `sign-in`).
 */
export class NotPermittedError extends PocketError {
  constructor(message: string, options: { hint?: string; details?: Record<string, unknown> } = {}) {
    super('notPermitted', message, options);
  }
}

/**
 * `launcher files`: a source that cannot be opened (not an image or block
 * device, nothing the appliance can mount, no such partition), read-write
 * refused (a hibernated or unclean NTFS), no open source by that name, or a
 * path that does not exist in it. `details.reason` says which.
 */
export class FilesError extends PocketError {
  constructor(message: string, options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('files', message, options);
  }
}

/**
 * `launcher files share`: the source is shared already (a credential is
 * printed once, so a second share is refused, not repeated), it is not
 * shared (`--stop`), no port could be forwarded, or a server in the
 * appliance did not start. `details.reason` says which.
 */
export class ShareError extends PocketError {
  constructor(message: string, options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('share', message, options);
  }
}

/**
 * `launcher files open|check`: the passphrase does not open a LUKS volume of
 * the source (`filesPassphrase`), or a LUKS volume needs one and none could be
 * asked (`filesLocked`: no terminal and no --passphrase-stdin). Nothing stays
 * open or unlocked.
 */
export class LuksPassphraseError extends PocketError {
  constructor(exit: 'filesPassphrase' | 'filesLocked', message: string, options: { hint?: string; details?: Record<string, unknown> } = {}) {
    super(exit, message, options);
  }
}

/**
 * A file-system refusal a person causes (a read-only or full stick, a file
 * where a folder belongs, a missing folder, no permission): one line naming
 * the path, never "internal error" pointing at a log that could not be written.
 */
function fromFileSystem(error: unknown): PocketError | undefined {
  const failure = error as NodeJS.ErrnoException;
  if (!(error instanceof Error) || typeof failure.code !== 'string') return undefined;
  const path = failure.path ?? 'a file';
  const details = { errno: failure.code, path };
  const options = (hint: string) => ({ hint, cause: error, details });
  switch (failure.code) {
    case 'EROFS':
      return new PocketError(
        'stick',
        `${path} is on a read-only file system; nothing was changed`,
        options('the stick is write-protected or mounted read-only: make it writable (its lock switch, or remount it read-write) and try again'),
      );
    case 'ENOSPC':
    case 'EDQUOT':
      return new PocketError('stick', `no space left for ${path}`, options('free some space on the stick and try again'));
    case 'ENOTDIR':
      return new PocketError('usage', `${path}: a file is where a folder was expected`, options('check the path: one of its parts is a file'));
    case 'EISDIR':
      return new PocketError('usage', `${path} is a folder where a file was expected`, options('check the path'));
    case 'ENOENT':
      return new PocketError('usage', `${path} does not exist`, options('check the path; a folder to write into must exist already'));
    case 'EACCES':
    case 'EPERM':
      return new PocketError('usage', `no permission to use ${path}`, options('check the path and its permissions'));
    default:
      return undefined;
  }
}

/**
 * `launcher image` (docs/image-store.md). The kind says what went wrong:
 * imageFormat (40) a file that is not a disk image pocketvm reads, or one
 * that is damaged (qemu-img check, its partition table); imageMissing (41)
 * no image of that name or hash in the catalog; imageInUse (42) rm of an
 * image a guest is made from; imageInspect (43) nothing in the image could
 * be inspected; imageStore (44) a stored image's file is missing or not the
 * size its catalog row records; imageDeploy (48) `image deploy` refused its
 * target (too small for the image, the stick itself, an existing file) or
 * could not write it; imageCustomize (49) `image customize` was given a step
 * it cannot apply (a bad host or user name, an unreadable key or file, no
 * steps) or a step failed in the image.
 * Nothing in the store changes when any of them is thrown.
 */
export class ImageError extends PocketError {
  constructor(
    kind: 'imageFormat' | 'imageMissing' | 'imageInUse' | 'imageInspect' | 'imageStore' | 'imageDeploy' | 'imageCustomize',
    message: string,
    options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(kind, message, options);
  }
}

/**
 * `launcher image adapt` (docs/adapt.md): adaptRefused (52) the image cannot
 * be adapted as asked, found before anything changes (an unknown --for, a bad
 * or taken --name, no Linux kernel in it, a /boot its fstab names that is not
 * in it, for pocketvm a root LVM volume not in one linear segment, neither the
 * target's drivers nor SATA/e1000 reachable, no packages for qemu-guest-agent,
 * nothing to change);
 * adaptFailed (53) a step failed inside the image (its update-initramfs,
 * dracut or dpkg, a device name that is no partition of its disk). The source
 * image is unchanged and no new image is made when either is thrown.
 */
export class AdaptError extends PocketError {
  constructor(kind: 'adaptRefused' | 'adaptFailed', message: string, options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(kind, message, options);
  }
}

/**
 * `launcher image capture` (docs/image-store.md, "Capture"): captureSource (45)
 * a SOURCE that cannot be captured (missing, an OVA, a layout or file system
 * it cannot rebuild, a bad or taken --name); captureCopy (46) partitioning,
 * formatting, copying or the bootloader failed on the new disk; captureBootCheck
 * (47) the new image did not reach its kernel in the boot check. The store and
 * the catalog are unchanged when any of them is thrown.
 */
export class CaptureError extends PocketError {
  constructor(
    kind: 'captureSource' | 'captureCopy' | 'captureBootCheck',
    message: string,
    options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(kind, message, options);
  }
}

/**
 * A guest made from a catalog image (docs/guests.md, "Guests from catalog
 * images"): guestFromImage (50) `guest create NAME --from IMAGE` named no
 * payload and no catalog image, or an image with no system the launcher can
 * start (never inspected, no Linux root file system it mounts);
 * imageGuestBase (51) at install or launch, the catalog image the guest was
 * made from is gone from the store or its file is no longer the one pinned.
 * Nothing is created, installed or started when either is thrown.
 */
export class ImageGuestError extends PocketError {
  constructor(kind: 'guestFromImage' | 'imageGuestBase', message: string, options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(kind, message, options);
  }
}

/**
 * `launcher export` (docs/export.md): exportSource (54) what was asked cannot
 * be exported as asked (no such guest, a target or flavour it does not write,
 * a user's overlay without --yes, an unreadable SSH key); exportWrite (55)
 * the destination is taken or writing it failed (the partial output removed).
 */
export class ExportError extends PocketError {
  constructor(kind: 'exportSource' | 'exportWrite', message: string, options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(kind, message, options);
  }
}

/**
 * `launcher import` (docs/import.md): importSource (59) SOURCE is not an
 * export it reads (no such file or folder, no descriptor in it, a descriptor
 * that cannot be read or says what pocketvm cannot take); importDisk (60) a
 * disk the descriptor names is missing or outside its folder. Nothing is
 * imported either way.
 */
export class ImportError extends PocketError {
  constructor(kind: 'importSource' | 'importDisk', message: string, options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(kind, message, options);
  }
}

/** The guest's screen cannot be shown as asked (docs/console-page.md). */
export class DisplayError extends PocketError {
  constructor(message: string, hint?: string) {
    super('display', message, hint === undefined ? {} : { hint });
  }
}

/** Wraps anything unexpected so the CLI still prints one line. */
export function asPocketError(error: unknown): PocketError {
  if (error instanceof PocketError) return error;
  // Ctrl-C at a prompt (@inquirer's ExitPromptError): the person chose to stop.
  if (error instanceof Error && error.name === 'ExitPromptError')
    return new PocketError('interrupted', 'interrupted at a prompt', { details: { prompt: true } });
  const fileSystem = fromFileSystem(error);
  if (fileSystem) return fileSystem;
  const message = error instanceof Error ? error.message : String(error);
  return new PocketError('internal', `internal error: ${message}`, {
    hint: 'this is a bug in pocketvm; the log on the stick (run/) has the details',
    cause: error,
  });
}

/** Several guests run from the stick and the command needs one: the message names them (docs/guests.md, "Several at once"). */
export class SeveralGuestsError extends PocketError {
  constructor(command: string, running: readonly string[], stickRoot: string) {
    super('severalGuests', `${running.length} guests are running from ${stickRoot} (${running.join(', ')}): say which with --guest`, {
      hint: `launcher ${command} --guest ${running[0]}`,
      details: { running, stickRoot },
    });
  }
}

/**
 * The guests already running from the stick leave too little of the host for
 * this one: starting it would starve the host (src/session/sizing.ts).
 */
export class HostBusyError extends PocketError {
  constructor(message: string, options: { hint?: string; details?: Record<string, unknown> } = {}) {
    super('hostBusy', message, options);
  }
}

/**
 * The user's guests running from the stick would together take more memory
 * than the stick's owner allows this user (`guest quota USER --memory`,
 * src/session/user-quotas.ts): the message names the quota.
 */
export class MemoryQuotaError extends PocketError {
  constructor(message: string, options: { hint?: string; details?: Record<string, unknown> } = {}) {
    super('memoryQuota', message, options);
  }
}

/**
 * What the user's guests hold on the stick would pass the disk quota the
 * stick's owner set (`guest quota USER --disk`): the launch, a new disk or the
 * growth is refused and nothing already there is lost.
 */
export class DiskQuotaError extends PocketError {
  constructor(message: string, options: { hint?: string; details?: Record<string, unknown> } = {}) {
    super('diskQuota', message, options);
  }
}
