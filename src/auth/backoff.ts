// Failed logins slow down progressively, and the count lives on the stick
// (users/<name>/backoff.json) so that restarting the launcher, or moving to
// another PC, does not reset it. It only slows an attacker who uses the
// launcher; one who copies the stick faces argon2id instead (passphrase.ts).
import { readFile, rm } from 'node:fs/promises';
import { z } from 'zod';
import { replaceFile } from '../primitives/atomic-replace.ts';

/** Free attempts before waits start; then 2, 4, 8 … s, capped. */
const FREE_ATTEMPTS = 2;
export const MAX_DELAY_SECONDS = 300;

/** Seconds to wait after the `failures`-th failed attempt in a row. */
export function backoffDelaySeconds(failures: number): number {
  if (failures <= FREE_ATTEMPTS) return 0;
  return Math.min(MAX_DELAY_SECONDS, 2 ** (failures - FREE_ATTEMPTS));
}

const stateSchema = z.object({ failures: z.int().nonnegative(), lastFailureAt: z.iso.datetime(), notBefore: z.iso.datetime() });
export type BackoffState = z.infer<typeof stateSchema>;

export class LoginBackoff {
  readonly path: string;
  readonly #now: () => number;

  constructor(path: string, now: () => number = Date.now) {
    this.path = path;
    this.#now = now;
  }

  async read(): Promise<BackoffState | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch {
      return undefined;
    }
    // A damaged back-off file must not lock anyone out for ever, nor reset
    // the count to zero: treat it as one more failure from now.
    const parsed = stateSchema.safeParse(
      (() => {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          return undefined;
        }
      })(),
    );
    if (parsed.success) return parsed.data;
    const now = new Date(this.#now()).toISOString();
    return { failures: FREE_ATTEMPTS + 1, lastFailureAt: now, notBefore: now };
  }

  /** Seconds until the next attempt is allowed (0: now). */
  async waitSeconds(): Promise<number> {
    const state = await this.read();
    if (!state) return 0;
    return Math.max(0, Math.ceil((Date.parse(state.notBefore) - this.#now()) / 1000));
  }

  /** Records a failure; returns the new count and the wait it imposes. */
  async recordFailure(): Promise<{ failures: number; waitSeconds: number }> {
    const failures = ((await this.read())?.failures ?? 0) + 1;
    const waitSeconds = backoffDelaySeconds(failures);
    const now = this.#now();
    const state: BackoffState = { failures, lastFailureAt: new Date(now).toISOString(), notBefore: new Date(now + waitSeconds * 1000).toISOString() };
    await replaceFile(this.path, `${JSON.stringify(state)}\n`);
    return { failures, waitSeconds };
  }

  async reset(): Promise<void> {
    await rm(this.path, { force: true });
  }
}
