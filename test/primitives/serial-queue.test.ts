// The one serialising queue (the namespace's mutations, a sealed file's block updates).
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { SerialQueue } from '../../src/primitives/serial-queue.ts';

describe('serial queue', () => {
  it('runs one function at a time, in order, and a rejection stops only its own caller', async () => {
    const q = new SerialQueue();
    const log: string[] = [];
    const step = (name: string, ms: number, fail = false) =>
      q.run(async () => {
        log.push(`${name}+`);
        await sleep(ms);
        log.push(`${name}-`);
        if (fail) throw new Error(name);
        return name;
      });
    const results = await Promise.allSettled([step('a', 20), step('b', 1, true), step('c', 5)]);
    assert.deepEqual(log, ['a+', 'a-', 'b+', 'b-', 'c+', 'c-']);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.equal(await step('d', 0), 'd');
  });
});
