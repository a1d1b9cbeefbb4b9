// What a presence source is and what it reports, apart from the monitor that
// runs the sources (presence-monitor.ts): the sources (presence-io.ts,
// presence-usb.ts, presence-drivelist.ts) import this file, the monitor imports
// them, and nothing imports back up.

export type PresenceSignal = 'io' | 'root-gone' | 'root-replaced' | 'block-device' | 'usb' | 'drivelist';

export interface Evidence {
  signal: PresenceSignal;
  /** What was seen, for a person: `stat /media/stick: ENOTCONN`. */
  detail: string;
}

/** What a source tells the monitor. */
export interface SourceReport {
  /** Sure: the stick is gone (e.g. its USB device detached). */
  removed(evidence: Evidence): void;
  /** One failure: the monitor asks the source to look again before believing it. */
  suspect(evidence: Evidence): void;
  /** A look after a suspicion found the stick fine: forget the suspicion. */
  cleared(): void;
}

export interface PresenceSource {
  readonly name: string;
  /** Starts watching; resolves once the source knows its baseline (or gave up: `false`). */
  start(report: SourceReport): Promise<boolean>;
  /** Looks again now (after `suspect`): reports `removed`/`suspect` again or `cleared`. */
  recheck(): void;
  stop(): void;
}
