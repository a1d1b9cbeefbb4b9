// Accelerator choice with fallback. The best accelerator the host offers is
// tried first; if QEMU aborts under it or the guest shows no sign of life in a
// bounded time, QEMU is killed and the guest restarted under TCG, and the
// person is told once. The verdict is remembered on the stick per host (by a
// salted hash, see host-key.ts), so a host with a broken /dev/kvm pays the
// probe once, not at every launch.
import { readFile } from 'node:fs/promises';
import { replaceFile } from '../primitives/atomic-replace.ts';
import { BootAttemptError, type Machine } from './machine.ts';
import type { Accelerator } from './machine-spec.ts';

/** What a host says of one hardware accelerator (src/hostprobe reads it; the plan below orders them). */
export interface AcceleratorProbe {
  name: Accelerator;
  /** Present and, as far as can be told without starting a guest, usable. */
  usable: boolean;
  reason: string;
}

export interface AcceleratorVerdict {
  accelerator: Accelerator;
  verdict: 'broken';
  reason: string;
  at: string;
}

type VerdictFile = Record<string, Partial<Record<Accelerator, AcceleratorVerdict>>>;

export class AcceleratorVerdicts {
  readonly #file: string;
  readonly #hostKey: string;

  constructor(file: string, hostKey: string) {
    this.#file = file;
    this.#hostKey = hostKey;
  }

  async #read(): Promise<VerdictFile> {
    try {
      return JSON.parse(await readFile(this.#file, 'utf8')) as VerdictFile;
    } catch {
      return {};
    }
  }

  async get(accelerator: Accelerator): Promise<AcceleratorVerdict | undefined> {
    return (await this.#read())[this.#hostKey]?.[accelerator];
  }

  async record(verdict: AcceleratorVerdict): Promise<void> {
    const all = await this.#read();
    all[this.#hostKey] = { ...all[this.#hostKey], [verdict.accelerator]: verdict };
    await replaceFile(this.#file, `${JSON.stringify(all, null, 2)}\n`);
  }

  async forget(accelerator: Accelerator): Promise<void> {
    const all = await this.#read();
    if (!all[this.#hostKey]?.[accelerator]) return;
    delete all[this.#hostKey]![accelerator];
    await replaceFile(this.#file, `${JSON.stringify(all, null, 2)}\n`);
  }
}

export interface AcceleratorPlan {
  /** In the order they will be tried; always ends with tcg. */
  candidates: Accelerator[];
  /** Why each hardware accelerator is or is not in the list. */
  notes: string[];
}

/**
 * `requested`: `auto` tries the best usable accelerator, then TCG; a named
 * accelerator is used alone (no fallback: the person asked for it).
 */
export async function planAccelerators(requested: Accelerator | 'auto', probes: AcceleratorProbe[], verdicts: AcceleratorVerdicts): Promise<AcceleratorPlan> {
  if (requested !== 'auto') return { candidates: [requested], notes: [`${requested} requested with --accel`] };
  const candidates: Accelerator[] = [];
  const notes: string[] = [];
  for (const probe of probes) {
    if (!probe.usable) {
      notes.push(`${probe.name} not used: ${probe.reason}`);
      continue;
    }
    const verdict = await verdicts.get(probe.name);
    if (verdict) {
      notes.push(`${probe.name} skipped: it failed on this host before (${verdict.reason}); --accel ${probe.name} tries it again`);
      continue;
    }
    candidates.push(probe.name);
  }
  candidates.push('tcg');
  return { candidates, notes };
}

export interface FallbackOptions {
  plan: AcceleratorPlan;
  verdicts: AcceleratorVerdicts;
  boot: (accelerator: Accelerator) => Promise<Machine>;
  /** Told once, when a hardware accelerator is given up for TCG. */
  onFallback: (message: string) => void;
}

export async function bootWithFallback(options: FallbackOptions): Promise<Machine> {
  const { candidates } = options.plan;
  // Verdicts are written only once a later accelerator boots the same guest:
  // if every attempt fails, the fault is the guest's or QEMU's, not the
  // accelerator's, and nothing is remembered against the host.
  const failed: AcceleratorVerdict[] = [];
  for (const [index, accelerator] of candidates.entries()) {
    const last = index === candidates.length - 1;
    try {
      const machine = await options.boot(accelerator);
      for (const verdict of failed) await options.verdicts.record(verdict);
      if (accelerator !== 'tcg') await options.verdicts.forget(accelerator);
      return machine;
    } catch (error) {
      const acceleratorFault = error instanceof BootAttemptError && (error.reason === 'exited' || error.reason === 'no-sign-of-life');
      if (last || !acceleratorFault) throw error;
      failed.push({ accelerator, verdict: 'broken', reason: error.message, at: new Date().toISOString() });
      options.onFallback(`${accelerator} does not work on this host (${error.message}); using software emulation (TCG) instead, which is slower`);
    }
  }
  throw new Error('no accelerator candidates');
}
