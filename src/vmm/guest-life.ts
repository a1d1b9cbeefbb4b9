// Guest life events the launcher must act on before the guest runs again.
//
// Placed 9P reads (src/ninep/ram-placement.ts) write guest RAM from
// the launcher, behind the guest's and QEMU's back. Such a write is only
// right while the kernel that pinned the pages is the one running:
//   - a reset (reboot -f, a panic with panic=-1, a triple fault) hands the
//     same RAM to a new kernel, whose pages would receive the old replies;
//   - a suspend copies RAM while QEMU's dirty log cannot see the launcher's
//     writes, so one landing mid-copy would be lost or torn in the state.
// QEMU is told (GUEST_LIFE_ACTIONS) to stop the vCPUs instead of resetting
// or exiting when the guest asks for either; watchGuestLife then retires
// every participant (the transport cancels its placements and ends its
// connections) and only then resets and continues the guest, or quits.
// A suspend quiesces the participants before `stop` (src/session/suspend.ts).
//
// kexec is not seen here: it changes kernels without a reset QEMU knows of.
// The guest's module says it instead (its reboot notifier; the transport's
// onGuestRetire in src/ninep/ethernet-transport.ts).
import type { QmpClient, QmpEvent } from './qmp-client.ts';

/** What a service that writes guest RAM does on each event. */
export interface GuestLifeParticipant {
  /**
   * The guest is being reset or is going away: nothing more may be written
   * into its RAM from the moment this is called; the promise resolves once
   * what the old guest sent has been dealt with.
   */
  retire(): Promise<void>;
  /** Before the vCPUs stop for a save: finish what writes guest RAM, then write none until `resume`. */
  quiesce(): Promise<void>;
  /** The save did not happen: back to normal. */
  resume(): void;
}

/**
 * QEMU options: a guest reset or power-off stops the vCPUs (runstate
 * "shutdown") and reports SHUTDOWN, instead of resetting at once or exiting;
 * watchGuestLife decides what follows. A host quit or signal still exits.
 */
export const GUEST_LIFE_ACTIONS = ['-action', 'reboot=shutdown,shutdown=pause'];

export class GuestLife {
  readonly #participants = new Set<GuestLifeParticipant>();
  /** Resets the guest went through (each retired what was placed before it). */
  resets = 0;

  /** Adds a participant; the function returned removes it. */
  add(participant: GuestLifeParticipant): () => void {
    this.#participants.add(participant);
    return () => this.#participants.delete(participant);
  }

  /** Every participant's retire() is called before this returns (their synchronous part runs now). */
  retire(): Promise<void> {
    return Promise.all([...this.#participants].map((p) => p.retire().catch(() => {}))).then(() => {});
  }

  async quiesce(): Promise<void> {
    await Promise.all([...this.#participants].map((p) => p.quiesce()));
  }

  resume(): void {
    for (const p of this.#participants) p.resume();
  }
}

/** What watchGuestLife does with one SHUTDOWN event: reset and continue, quit, or nothing (the host asked). */
export function shutdownOutcome(event: QmpEvent): 'reset' | 'quit' | 'none' {
  if (event.event !== 'SHUTDOWN' || event.data['guest'] !== true) return 'none';
  return event.data['reason'] === 'guest-reset' ? 'reset' : 'quit';
}

/**
 * Acts on the guest's own resets and power-offs (QEMU paused by
 * GUEST_LIFE_ACTIONS): retire every participant first, then `system_reset`
 * and `cont` for a reset, `quit` for a power-off or panic. Installed before
 * the first `cont`; the function returned stops watching.
 */
export function watchGuestLife(qmp: QmpClient, life: GuestLife, note: (message: string) => void = () => {}): () => void {
  let chain = Promise.resolve();
  // A kernel's reboot tries several ways to reset (ACPI, keyboard controller,
  // ...) and the vCPU may get to the next before QEMU stops it: one reset is
  // enough for all the requests that came before it.
  let resetQueued = false;
  return qmp.onEvent((event) => {
    const outcome = shutdownOutcome(event);
    if (outcome === 'none') return;
    if (outcome === 'reset') {
      if (resetQueued) return;
      resetQueued = true;
    }
    // One event at a time, in order: a reset's cont must not overtake a later quit.
    chain = chain
      .then(async () => {
        const retiring = life.retire();
        if (outcome === 'reset') {
          resetQueued = false;
          life.resets++;
          note(`guest reset (${String(event.data['reason'])}): placed reads cancelled and mounts retired before it runs again`);
          // With the vCPUs stopped and the old mounts retired: reset (QEMU's net
          // queues are purged), let the transport drop what is left, then run.
          // Under reboot=shutdown QEMU turns system_reset into a shutdown too:
          // the action is `reset` just for this (the vCPUs are stopped, the
          // guest cannot reboot meanwhile). system_reset only asks; `cont` is
          // refused until the reset is done (its RESET event).
          const reset = qmp.watch('RESET');
          try {
            await qmp.execute('set-action', { reboot: 'reset' });
            await qmp.execute('system_reset');
            await reset.next({ timeoutMs: 30_000 });
          } finally {
            reset.close();
            await qmp.execute('set-action', { reboot: 'shutdown' });
          }
          await retiring;
          await qmp.cont();
        } else {
          note(`guest ${String(event.data['reason'])}: placed reads cancelled, QEMU quits`);
          await retiring;
          await qmp.quit();
        }
      })
      .catch((error: unknown) => {
        // QMP closed (QEMU gone) is the usual reason; anything else is worth a line in the log.
        note(`guest ${String(event.data['reason'])}: ${(error as Error).message}`);
      });
  });
}
