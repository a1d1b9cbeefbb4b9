import assert from 'node:assert/strict';
import { parseManifest } from '../../src/payload/manifest.ts';
import { sizeMachine } from '../../src/session/sizing.ts';
import { validManifest } from '../payload/manifest-fixture.ts';

const manifest = parseManifest(
  JSON.stringify({ ...validManifest, memory: { minimumMiB: 128, recommendedMiB: 1024 }, cpus: { minimum: 1, recommended: 4 } }),
  'g',
);

describe('machine sizing', () => {
  it('gives the recommendation when the host can spare it', () => {
    assert.deepEqual(sizeMachine(manifest, { availableMiB: 16_000, threads: 8 }), { memoryMiB: 1024, cpus: 4, reasons: [] });
  });
  it('never takes more than half the available memory or all CPU threads', () => {
    const sizing = sizeMachine(manifest, { availableMiB: 1000, threads: 2 });
    assert.equal(sizing.memoryMiB, 500);
    assert.equal(sizing.cpus, 1);
    assert.equal(sizing.reasons.length, 2);
  });
  it('never goes below the minimum', () => {
    assert.equal(sizeMachine(manifest, { availableMiB: 100, threads: 1 }).memoryMiB, 128);
  });
});
