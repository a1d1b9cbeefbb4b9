// Sizing beside the guests already running from the stick (docs/guests.md,
// "Several at once"): their memory and vCPUs come off what this guest may
// take, and a guest that would starve the host only because of them is
// refused with them named (exit 34).
import assert from 'node:assert/strict';
import { ExitCode, HostBusyError, HostTooSmallError } from '../../src/errors.ts';
import { parseManifest } from '../../src/payload/guest-manifest.ts';
import { sizeMachine } from '../../src/session/sizing.ts';
import { validManifest } from '../payload/guest-manifest-fixture.ts';

const manifest = parseManifest(
  JSON.stringify({ ...validManifest, memory: { minimumMiB: 512, recommendedMiB: 1024 }, cpus: { minimum: 1, recommended: 2 } }),
  'g',
);
const host = (availableMiB: number, threads: number, totalMiB: number) => ({ memory: { totalMiB, availableMiB }, cpu: { threads } });

describe('machine sizing with other guests running', () => {
  it('takes the running guests off the total before the reserve, and their vCPUs off the threads', () => {
    // 4 GiB total, 3.5 GiB available: alone the guest gets its 1024 MiB and 2 vCPUs.
    assert.deepEqual([sizeMachine(manifest, host(3500, 4, 4096)).memoryMiB, sizeMachine(manifest, host(3500, 4, 4096)).cpus], [1024, 2]);
    const beside = sizeMachine(manifest, host(3000, 4, 4096), {}, [{ guest: 'work', memoryMiB: 2400, cpus: 2 }]);
    assert.equal(beside.memoryMiB, 4096 - 1024 - 2400);
    assert.equal(beside.cpus, 1);
    assert.ok(beside.reasons.includes('sharing the host with work (2400 MiB, 2 vCPU)'), beside.reasons.join('\n'));
    assert.match(beside.reasons.join('\n'), /less a 1024 MiB reserve and the running guests' memory/);
    assert.match(beside.reasons.join('\n'), /threads less one and the 2 of the guests running/);
  });

  it('refuses a guest that would starve the host beside the running ones (exit 34), naming them', () => {
    const running = [
      { guest: 'work', memoryMiB: 1500, cpus: 1 },
      { guest: 'play', memoryMiB: 1200, cpus: 1 },
    ];
    assert.throws(
      () => sizeMachine(manifest, host(1200, 4, 4096), {}, running),
      (error: unknown) =>
        error instanceof HostBusyError &&
        error.exitCode === ExitCode.hostBusy &&
        error.exitCode === 34 &&
        /beside the guests running from this stick: work \(1500 MiB, 1 vCPU\), play \(1200 MiB, 1 vCPU\)/.test(error.message) &&
        /leaves 372 MiB/.test(error.message),
    );
  });

  it('a host too small even alone is still exit 14, not 34', () => {
    assert.throws(
      () => sizeMachine(manifest, host(600, 2, 1200), {}, [{ guest: 'work', memoryMiB: 100, cpus: 1 }]),
      (error: unknown) => error instanceof HostTooSmallError,
    );
  });

  it('vCPUs are time-shared: a guest keeps its minimum when the others took every thread', () => {
    const sizing = sizeMachine(manifest, host(8000, 2, 16_000), {}, [{ guest: 'work', memoryMiB: 512, cpus: 2 }]);
    assert.equal(sizing.cpus, 1);
  });
});
