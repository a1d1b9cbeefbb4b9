import assert from 'node:assert/strict';
import { HostTooSmallError } from '../../src/errors.ts';
import { parseManifest } from '../../src/payload/guest-manifest.ts';
import { sizeMachine } from '../../src/session/sizing.ts';
import { validManifest } from '../payload/guest-manifest-fixture.ts';

const manifest = parseManifest(
  JSON.stringify({ ...validManifest, memory: { minimumMiB: 128, recommendedMiB: 1024 }, cpus: { minimum: 1, recommended: 4 } }),
  'g',
);
const host = (availableMiB: number, threads: number, totalMiB = availableMiB * 2) => ({ memory: { totalMiB, availableMiB }, cpu: { threads } });

describe('machine sizing', () => {
  it('gives the recommendation when the host can spare it, and says so', () => {
    const sizing = sizeMachine(manifest, host(16_000, 8), {});
    assert.equal(sizing.memoryMiB, 1024);
    assert.equal(sizing.cpus, 4);
    assert.deepEqual(sizing.reasons, [
      "memory 1024 MiB: the guest's recommended 1024 MiB (the host could spare up to 8000 MiB)",
      "vCPUs 4: the guest's recommended 4 (the host has 8 threads, one kept for itself)",
    ]);
  });

  it('never takes more than half the available memory, nor all CPU threads', () => {
    const sizing = sizeMachine(manifest, host(1000, 2, 8000));
    assert.equal(sizing.memoryMiB, 500);
    assert.equal(sizing.cpus, 1);
    assert.match(sizing.reasons[0]!, /more than half of the host's 1000 MiB available \(500 MiB\)/);
    assert.match(sizing.reasons[1]!, /more than the host's 2 threads less one/);
  });

  it('keeps a 1 GiB reserve of the total when that binds before half the available', () => {
    // A small machine with most of it free: half the available is 850 MiB, total less 1 GiB is 776 MiB.
    const sizing = sizeMachine(manifest, host(1700, 4, 1800));
    assert.equal(sizing.memoryMiB, 1800 - 1024);
    assert.match(sizing.reasons[0]!, /1800 MiB total less a 1024 MiB reserve/);
  });

  it('refuses with a typed error rather than starve the host below the minimum', () => {
    assert.throws(
      () => sizeMachine(manifest, host(200, 4, 8000)),
      (error: unknown) =>
        error instanceof HostTooSmallError && error.exitCode === 14 && /cannot spare the 128 MiB/.test(error.message) && error.details['resource'] === 'memory',
    );
    assert.throws(() => sizeMachine(manifest, host(4000, 4, 1100)), HostTooSmallError, 'a 1100 MiB machine keeps its reserve');
  });

  it('overrides replace the recommendation, within the same caps', () => {
    const sizing = sizeMachine(manifest, host(16_000, 8), { memoryMiB: 2048, cpus: 2 });
    assert.equal(sizing.memoryMiB, 2048);
    assert.equal(sizing.cpus, 2);
    assert.match(sizing.reasons[0]!, /override Machine\\MemoryMiB = 2048/);
    const capped = sizeMachine(manifest, host(4000, 4), { memoryMiB: 64_000, cpus: 16 });
    assert.equal(capped.memoryMiB, 2000);
    assert.equal(capped.cpus, 3);
    assert.match(capped.reasons.join('\n'), /override Machine\\MemoryMiB = 64000 is more than half/);
    assert.match(capped.reasons.join('\n'), /override Machine\\Cpus = 16 is more than the host's 4 threads less one/);
  });

  it('an override below the minimum is raised to it', () => {
    const strict = parseManifest(
      JSON.stringify({ ...validManifest, memory: { minimumMiB: 256, recommendedMiB: 512 }, cpus: { minimum: 2, recommended: 2 } }),
      'g',
    );
    const sizing = sizeMachine(strict, host(16_000, 8), { memoryMiB: 100, cpus: 1 });
    assert.equal(sizing.memoryMiB, 256);
    assert.equal(sizing.cpus, 2);
    assert.match(sizing.reasons.join('\n'), /memory override 100 MiB is below the guest's minimum: raised to 256 MiB/);
    assert.match(sizing.reasons.join('\n'), /vCPU override 1 is below the guest's minimum: raised to 2/);
  });

  it('vCPUs: at least 1 on a one-thread host; a minimum above threads − 1 shares the last thread; above all threads it is refused', () => {
    assert.equal(sizeMachine(manifest, host(16_000, 1)).cpus, 1);
    const two = parseManifest(JSON.stringify({ ...validManifest, cpus: { minimum: 2, recommended: 2 } }), 'g');
    const shared = sizeMachine(two, host(16_000, 2));
    assert.equal(shared.cpus, 2);
    assert.match(shared.reasons[1]!, /sharing the host's last thread/);
    assert.throws(
      () => sizeMachine(two, host(16_000, 1)),
      (error: unknown) => error instanceof HostTooSmallError && error.details['resource'] === 'cpus',
    );
  });
});
