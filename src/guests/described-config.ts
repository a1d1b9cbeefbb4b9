// A guest made from a catalog image starts with the machine the image was
// exported as (docs/guests.md, "What an imported machine's descriptor
// gives"): the memory, CPUs, network and first MAC the descriptor `launcher
// import` recorded (src/images/described-machine.ts) over the source's
// defaults, each kept within what a guest configuration allows and the
// source needs; what was taken, changed to fit, or left is recorded with the
// guest, so `guest config NAME show` and `launcher import --json` say it.
import type { DescribedMachine } from '../images/described-machine.ts';
import { type GuestConfig, MAX_CPUS, MAX_MEMORY_MIB, macProblem, normalMac, type SourceNeeds } from './guest-config.ts';

export interface TakenFromDescriptor {
  property: 'memory' | 'cpus' | 'network' | 'mac';
  /** The value the guest's configuration got. */
  value: number | string;
  /** Why it is not what the descriptor said (raised to the minimum, lowered to the maximum, several NICs made one). */
  note?: string;
}

export interface DescriptorConfig {
  /** The image whose descriptor it was (the guest's image or an ancestor it was adapted or customized from). */
  image: string;
  /** The descriptor file `launcher import` read. */
  source: string;
  taken: TakenFromDescriptor[];
  /** What the descriptor said that the guest could not take, and why. */
  left: Array<{ property: 'mac'; said: string; why: string }>;
}

/** `said` rounded and brought within [minimum, maximum], with a note when it moved. */
function within(said: number, minimum: number, maximum: number, unit: string, needs: string): { value: number; note?: string } {
  const whole = Math.round(said);
  if (whole < minimum) return { value: minimum, note: `the descriptor said ${said}${unit}; raised to the ${minimum}${unit} ${needs} needs at least` };
  if (whole > maximum) return { value: maximum, note: `the descriptor said ${said}${unit}; lowered to the ${maximum}${unit} a guest may have` };
  return whole === said ? { value: whole } : { value: whole, note: `the descriptor said ${said}${unit}; rounded` };
}

/** `defaults` with what `machine` says in place of the source's defaults. */
export function configFromDescribed(
  defaults: GuestConfig,
  needs: SourceNeeds,
  machine: DescribedMachine,
): { config: GuestConfig; fromDescriptor: DescriptorConfig } {
  const config = structuredClone(defaults);
  const taken: TakenFromDescriptor[] = [];
  const left: DescriptorConfig['left'] = [];
  const take = (property: TakenFromDescriptor['property'], result: { value: number | string; note?: string }) =>
    taken.push({ property, value: result.value, ...(result.note ? { note: result.note } : {}) });
  if (machine.memoryMiB !== undefined) {
    const memory = within(machine.memoryMiB, Math.max(1, needs.minimumMiB), MAX_MEMORY_MIB, ' MiB', 'the guest');
    config.memoryMiB = memory.value;
    take('memory', memory);
  }
  if (machine.cpus !== undefined) {
    const cpus = within(machine.cpus, Math.max(1, needs.minimumCpus), MAX_CPUS, '', 'the guest');
    config.cpus = cpus.value;
    take('cpus', cpus);
  }
  // The stick gives a guest at most one card, user-mode (docs/network.md): any NIC at all becomes that one.
  const [first, ...more] = machine.nics;
  config.network = first ? 'user' : 'none';
  take('network', {
    value: config.network,
    note: first ? `${machine.nics.length} NIC${more.length > 0 ? 's, made the one user-mode card' : ''}` : 'the machine had no NIC',
  });
  if (first?.mac !== undefined) {
    const mac = normalMac(first.mac);
    const problem = macProblem(mac);
    if (problem) left.push({ property: 'mac', said: first.mac, why: `${problem}; the stick's default address is used` });
    else {
      config.mac = mac;
      take('mac', { value: mac, ...(more.length > 0 ? { note: `the first of ${machine.nics.length} NICs` } : {}) });
    }
  }
  return { config, fromDescriptor: { image: machine.image, source: machine.source, taken, left } };
}

/** One line per property taken or left, for step lines and `guest config show`. */
export function describeFromDescriptor(from: DescriptorConfig): string[] {
  const unit = (t: TakenFromDescriptor) => (t.property === 'memory' ? ' MiB' : '');
  return [
    ...from.taken.map((t) => `${t.property} ${t.value}${unit(t)}${t.note ? ` (${t.note})` : ''}`),
    ...from.left.map((l) => `${l.property} ${l.said} not taken: ${l.why}`),
  ];
}
