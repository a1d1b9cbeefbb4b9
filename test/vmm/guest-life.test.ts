import assert from 'node:assert/strict';
import { GuestLife, type GuestLifeParticipant, shutdownOutcome } from '../../src/vmm/guest-life.ts';

const shutdown = (data: Record<string, unknown>) => ({ event: 'SHUTDOWN', data, timestamp: { seconds: 0, microseconds: 0 } });

describe('guest life events', () => {
  it("a guest reset is reset-and-continue, a guest power-off or panic is quit, the host's own quit is left alone", () => {
    assert.equal(shutdownOutcome(shutdown({ guest: true, reason: 'guest-reset' })), 'reset');
    assert.equal(shutdownOutcome(shutdown({ guest: true, reason: 'guest-shutdown' })), 'quit');
    assert.equal(shutdownOutcome(shutdown({ guest: true, reason: 'guest-panic' })), 'quit');
    assert.equal(shutdownOutcome(shutdown({ guest: false, reason: 'host-qmp-quit' })), 'none');
    assert.equal(shutdownOutcome(shutdown({ guest: false, reason: 'host-signal' })), 'none');
    assert.equal(shutdownOutcome({ event: 'RESET', data: { guest: true, reason: 'guest-reset' }, timestamp: { seconds: 0, microseconds: 0 } }), 'none');
  });

  it('retire reaches every participant before it returns; a failing one does not hold the others', async () => {
    const life = new GuestLife();
    const calls: string[] = [];
    const participant = (name: string, fail = false): GuestLifeParticipant => ({
      retire: () => {
        calls.push(`retire ${name}`);
        return fail ? Promise.reject(new Error('gone')) : new Promise((resolve) => setTimeout(resolve, 20));
      },
      quiesce: async () => void calls.push(`quiesce ${name}`),
      resume: () => void calls.push(`resume ${name}`),
    });
    life.add(participant('a'));
    const removeB = life.add(participant('b', true));
    const retired = life.retire();
    assert.deepEqual(calls, ['retire a', 'retire b'], 'synchronously, before anything else can run');
    await retired;
    removeB();
    await life.quiesce();
    life.resume();
    assert.deepEqual(calls.slice(2), ['quiesce a', 'resume a']);
  });
});
