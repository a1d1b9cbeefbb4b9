// SIGKILL of the launcher at every step of guest create, install, uninstall,
// delete and clone, and at random moments while they run (at least 50
// trials): each leaves a state `guest list` shows, and the next command
// finishes the job with no manual step (test/guests/fault-trials.ts). No
// guest boots here: these commands change the stick only.
import assert from 'node:assert/strict';
import type { StickLayout } from '../../src/stick/layout.ts';
import { FAILPOINTS, runTrials } from './fault-trials.ts';
import { makeStick, payloadBuilt } from './helpers.ts';

describe('guest lifecycle under SIGKILL', function () {
  this.timeout(600_000);
  let stick: { layout: StickLayout; remove: () => Promise<void> };
  before(async function () {
    if (!payloadBuilt()) this.skip();
    stick = await makeStick('pocketvm-guest-faults-');
  });
  after(async () => {
    await stick?.remove();
  });

  it('52 kills (every failpoint, then random moments): every one ends in a state list shows and the next command recovers', async () => {
    const results = await runTrials(stick.layout, 52);
    const failed = results.filter((r) => !r.recovered);
    assert.deepEqual(failed, [], 'every trial recovers');
    // The failpoint trials really died at their step (a failpoint that no longer fires would pass vacuously).
    const pointTrials = results.filter((r) => !r.kill.startsWith('after:'));
    assert.equal(pointTrials.length, Object.values(FAILPOINTS).flat().length);
    for (const trial of pointTrials) assert.ok(trial.killed, `${trial.kill} fired`);
    // The random kills left more than one kind of state behind: they hit the commands mid-way, not only before or after.
    const leftByRandom = new Set(results.filter((r) => r.kill.startsWith('after:') && r.killed).map((r) => `${r.command}:${r.left}`));
    assert.ok(leftByRandom.size >= 3, `random kills left: ${[...leftByRandom].join(', ')}`);
  });
});
