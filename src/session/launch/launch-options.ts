// What a caller (src/cli/session-runner.ts) asks of a launch, and what it hears back.
import type { UnlockedUser } from '../../auth/users.ts';
import type { GuestManifest } from '../../payload/guest-manifest.ts';
import type { Machine } from '../../vmm/machine.ts';
import type { Accelerator } from '../../vmm/machine-spec.ts';
import type { DisplayRequest } from '../features/display-feature.ts';

export interface LaunchEvent {
  stage: 'stick' | 'payload' | 'qemu' | 'accelerator' | 'recovery' | 'boot' | 'ready';
  message: string;
}

export interface LaunchOptions {
  stickRoot: string;
  guest: string;
  accelerator: Accelerator | 'auto';
  /** The launcher command that holds the lock, shown to anyone refused. */
  command: string;
  onEvent?: (event: LaunchEvent) => void;
  /** Told once if the hardware accelerator is given up for TCG. */
  onNotice?: (message: string) => void;
  signal?: AbortSignal;
  /** The logged-in user: their encrypted disk is attached and mounted as their home. */
  user?: UnlockedUser;
  /** Or: log in once the stick and payload are checked, before QEMU starts. */
  login?: () => Promise<UnlockedUser>;
  /** The serial console logs in as root instead of the user (`run --root`). */
  consoleAsRoot?: boolean;
  /** The payload folder the guest boots, when it is not the guest's own name (a guest made by `guest create NAME --from PAYLOAD`). */
  payload?: string;
  /** The guest's committed platform (src/guests/, docs/guests.md), applied over the payload's manifest. */
  platform?: GuestPlatform;
  /** The guest gets a screen: for the console page (QEMU's VNC on a private socket), or QEMU's own window. */
  display?: DisplayRequest;
  /** `guest ready` (docs/guests.md): QEMU paused with its platform in place until this resolves, then the guest boots (src/vmm/machine.ts). */
  hold?: (held: { console: import('../../vmm/console-tap.ts').ConsoleTap; kill: () => void; lock: import('../../stick/lock.ts').StickLock }) => Promise<void>;
  /** The console page this launch is served on: the lock names it for `launcher status` from the start. */
  page?: { address: string };
}

/**
 * What a guest's configuration changes in a launch: its memory and CPUs
 * (still capped so the host is never starved, src/session/sizing.ts), its
 * network, and table rules added to the payload's.
 */
export interface GuestPlatform {
  memoryMiB?: number;
  cpus?: number;
  network?: 'none' | 'user';
  /** The user-mode card's MAC; absent: USER_NETWORK_MAC. */
  mac?: string;
  tables?: NonNullable<GuestManifest['tables']>;
  /** A guest made from a catalog image (src/guests/image-source.ts): its system, under the user's overlay. */
  image?: CatalogImageSystem;
}

/** The catalog image a guest's system is: the store file (qcow2, read-only) and where its root is. */
export interface CatalogImageSystem {
  name: string;
  /** The store file, checked against its pinned sha256 before the launch. */
  file: string;
  /** The virtual disk's size: the overlay's. */
  bytes: number;
  /** The partition holding `/` (0: the whole disk; on LVM, its physical volume's). */
  rootPartition: number;
  /** `/` on an LVM logical volume: its VG/LV. */
  rootVolume?: string;
}

export interface LaunchTimings {
  /** Milliseconds from the launch call. */
  preparedMs: number;
  readyMs: number;
  boot: Machine['timings'];
}
