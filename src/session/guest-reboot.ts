// `launcher guest reboot NAME`: the guest restarts inside the same session —
// QEMU, its disks and channels stay; the guest's init is asked through its
// agent (guest-shutdown, mode reboot: the payload's init unmounts and syncs
// first, payload/rootfs/init). The reset itself goes through the launcher
// (src/vmm/guest-life.ts: what writes guest RAM is retired before the new
// kernel runs). Answered once the new boot's agent answers.
import { GuestFailedError } from '../errors.ts';
import type { Session } from './session.ts';

const RESET_TIMEOUT_MS = 120_000;

export async function rebootGuest(session: Session): Promise<{ ms: number }> {
  const started = performance.now();
  const { machine } = session;
  const resetsBefore = machine.life.resets;
  await machine.agent.shutdown('reboot', { graceMs: 2_000 });
  // The old boot's agent may still answer for a moment: wait for the reset first.
  const deadline = Date.now() + RESET_TIMEOUT_MS;
  while (machine.life.resets === resetsBefore) {
    if (!machine.process.running) throw new GuestFailedError(`${session.guest} powered off instead of rebooting`);
    if (Date.now() > deadline) throw new GuestFailedError(`${session.guest} did not reset within ${RESET_TIMEOUT_MS / 1000} s of the reboot request`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await machine.agent.waitUntilReady({ timeoutMs: session.payload.manifest.readyTimeoutSeconds * 1000, attemptTimeoutMs: 1_000 });
  return { ms: Math.round(performance.now() - started) };
}
