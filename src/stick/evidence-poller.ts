// The polling loop shared by the presence sources that look rather than
// listen (the drive list, the direct I/O probe): one look at a time, at an
// interval; evidence makes the source suspect removal, a clean look after a
// suspicion clears it. The monitor (presence-monitor.ts) does the debouncing.
import type { Evidence, SourceReport } from './presence-source.ts';

export class EvidencePoller {
  readonly #look: () => Promise<Evidence | undefined>;
  #report: SourceReport | undefined;
  #timer: NodeJS.Timeout | undefined;
  #inFlight = false;
  #suspected = false;
  #stopped = false;

  constructor(look: () => Promise<Evidence | undefined>) {
    this.#look = look;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Where evidence is reported; set before the first look. */
  attach(report: SourceReport): void {
    this.#report = report;
  }

  /** Starts looking every `intervalMs`; false if the source was stopped meanwhile. */
  start(intervalMs: number): boolean {
    if (this.#stopped) return false;
    this.#timer = setInterval(this.probe, intervalMs);
    this.#timer.unref();
    return true;
  }

  /** One look now, unless one is under way (a hung device never piles up looks). */
  readonly probe = (): void => {
    if (this.#inFlight || this.#stopped) return;
    this.#inFlight = true;
    this.#look().then(
      (evidence) => {
        this.#inFlight = false;
        if (this.#stopped) return;
        if (evidence) {
          this.#suspected = true;
          this.#report?.suspect(evidence);
        } else if (this.#suspected) {
          this.#suspected = false;
          this.#report?.cleared();
        }
      },
      () => {
        this.#inFlight = false;
      },
    );
  };

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
