// Is the stick still there? Several independent signals watch it, and the
// first one that is sure wins: a USB detach of the stick's own device, the
// drive holding the stick vanishing from the drive list, or direct evidence:
// the stick's root or a file held open on it failing with the errors a yanked
// device gives. Only the direct evidence needs no hardware at all, so a stick
// that is just a directory (or a FUSE mount in the tests) is watched too.
//
// A signal source reports `suspect` on a single failure and `removed` once it
// is sure; the monitor confirms a suspicion with a second look shortly after
// (one transient error is not a removal) and emits `removed` exactly once.
import { EventEmitter } from 'node:events';
import { drivelistSource } from './presence-drivelist.ts';
import { ioSource } from './presence-io.ts';
import type { Evidence, PresenceSource, SourceReport } from './presence-source.ts';
import { type UsbIdentity, usbSource } from './presence-usb.ts';

export interface RemovalEvent extends Evidence {
  /** The source that won (the first to be sure). */
  source: string;
  /** Wall-clock milliseconds: the first failure seen, and the confirmation. */
  firstEvidenceAt: number;
  confirmedAt: number;
  /** performance.now() at confirmation, for latency measurements. */
  confirmedMonotonic: number;
}

export interface PresenceOptions {
  /** How often the direct probe looks (ms). */
  intervalMs?: number;
  /** How soon a suspicion is looked at again (ms). */
  confirmMs?: number;
  /** A suspicion older than this without a second failure is forgotten (ms). */
  debounceWindowMs?: number;
  /** How often the drive list is read (it spawns lsblk on Linux: keep it modest). */
  drivelistIntervalMs?: number;
  /** What the host probe found out about the stick, if it ran (src/hostprobe: StickFacts). */
  stick?: StickHints;
  /** Replaces the default sources (tests). */
  sources?: PresenceSource[];
}

/** The stick as the host probe saw it: its drive, and the USB device that drive is. */
export interface StickHints {
  /** `fixed-disk-folder`: a folder on a disk that stays; `removable`: a real stick. */
  kind?: string;
  drive?: { device: string; mountpoint: string };
  usb?: UsbIdentity;
}

export const DEFAULT_PRESENCE: Required<Omit<PresenceOptions, 'sources' | 'stick'>> = {
  intervalMs: 200,
  confirmMs: 50,
  debounceWindowMs: 400,
  drivelistIntervalMs: 2_000,
};

/** The default sources for a stick at `root`, cheapest and most general first. */
export function defaultSources(root: string, options: PresenceOptions = {}): PresenceSource[] {
  const settings = { ...DEFAULT_PRESENCE, ...options };
  const hints = options.stick;
  // A folder on a disk that stays: only the direct probe has anything to watch.
  if (hints?.kind === 'fixed-disk-folder') return [ioSource(root, { intervalMs: settings.intervalMs })];
  return [
    ioSource(root, { intervalMs: settings.intervalMs }),
    usbSource(root, hints?.usb ? { known: hints.usb } : {}),
    drivelistSource(root, { intervalMs: settings.drivelistIntervalMs, ...(hints?.drive ? { known: hints.drive } : {}) }),
  ];
}

export class PresenceMonitor extends EventEmitter<{ removed: [RemovalEvent] }> {
  readonly root: string;
  readonly #sources: PresenceSource[];
  readonly #settings: Required<Omit<PresenceOptions, 'sources' | 'stick'>>;
  /** Per source: when its current suspicion began. */
  readonly #suspicions = new Map<PresenceSource, { at: number; timer: NodeJS.Timeout }>();
  #active: PresenceSource[] = [];
  #removal: RemovalEvent | undefined;
  #stopped = false;

  private constructor(root: string, sources: PresenceSource[], settings: Required<Omit<PresenceOptions, 'sources' | 'stick'>>) {
    super();
    this.root = root;
    this.#sources = sources;
    this.#settings = settings;
  }

  /** Starts every source; those that cannot work here (no USB, no drive list) drop out quietly. */
  static async start(root: string, options: PresenceOptions = {}): Promise<PresenceMonitor> {
    const { sources, stick, ...rest } = options;
    const settings = { ...DEFAULT_PRESENCE, ...rest };
    const monitor = new PresenceMonitor(root, sources ?? defaultSources(root, { ...settings, ...(stick ? { stick } : {}) }), settings);
    await monitor.#startSources();
    return monitor;
  }

  async #startSources(): Promise<void> {
    const started = await Promise.all(
      this.#sources.map(async (source) => {
        try {
          return (await source.start(this.#reportFor(source))) ? source : undefined;
        } catch {
          return undefined;
        }
      }),
    );
    this.#active = started.filter((source): source is PresenceSource => source !== undefined);
    // A source that reported before the others had started: stop them now.
    if (this.#removal || this.#stopped) this.#stopSources();
  }

  /** The sources that are watching (those that could start here). */
  get sources(): string[] {
    return this.#active.map((source) => source.name);
  }

  get removal(): RemovalEvent | undefined {
    return this.#removal;
  }

  /** Resolves when the stick is found removed (never, if the monitor is stopped first). */
  removed(): Promise<RemovalEvent> {
    if (this.#removal) return Promise.resolve(this.#removal);
    return new Promise((resolve) => this.once('removed', resolve));
  }

  #reportFor(source: PresenceSource): SourceReport {
    return {
      removed: (evidence) => this.#confirm(source, evidence),
      suspect: (evidence) => this.#suspect(source, evidence),
      cleared: () => this.#clear(source),
    };
  }

  #suspect(source: PresenceSource, evidence: Evidence): void {
    if (this.#removal || this.#stopped) return;
    const now = Date.now();
    const earlier = this.#suspicions.get(source);
    // Two failures in a row within the window: that is a removal.
    if (earlier && now - earlier.at <= this.#settings.debounceWindowMs) return this.#confirm(source, evidence, earlier.at);
    if (earlier) clearTimeout(earlier.timer);
    const timer = setTimeout(() => source.recheck(), this.#settings.confirmMs);
    timer.unref();
    this.#suspicions.set(source, { at: now, timer });
  }

  #clear(source: PresenceSource): void {
    const earlier = this.#suspicions.get(source);
    if (earlier) clearTimeout(earlier.timer);
    this.#suspicions.delete(source);
  }

  #confirm(source: PresenceSource, evidence: Evidence, firstEvidenceAt?: number): void {
    if (this.#removal || this.#stopped) return;
    const confirmedAt = Date.now();
    this.#removal = { ...evidence, source: source.name, firstEvidenceAt: firstEvidenceAt ?? confirmedAt, confirmedAt, confirmedMonotonic: performance.now() };
    this.#stopSources();
    this.emit('removed', this.#removal);
  }

  #stopSources(): void {
    for (const { timer } of this.#suspicions.values()) clearTimeout(timer);
    this.#suspicions.clear();
    for (const source of this.#sources) {
      try {
        source.stop();
      } catch {
        // a source that cannot stop cleanly has nothing left to watch anyway
      }
    }
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#stopSources();
  }
}
