// The cipher worker's priority: the sealed files' pool runs in the
// background (nice 19) so that on two cores the guest's vCPU and the event
// loop come first; the saved-state streams' workers keep the default.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { GcmWorker } from '../../src/vmm/gcm-worker.ts';

/** This process's threads' nice values, by thread ID (Linux). */
function threadNices(): Map<number, number> {
  const nices = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    // Fields after the command's closing parenthesis: state is field 3, nice field 19.
    nices.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
  }
  return nices;
}

describe('cipher worker priority', function () {
  before(function () {
    if (process.platform !== 'linux') this.skip();
  });

  it('a background worker runs at nice 19 and still seals; a default one at the process priority', async () => {
    const before = threadNices();
    const key = randomBytes(32);
    const normal = new GcmWorker(key);
    const background = new GcmWorker(randomBytes(32), { background: true });
    try {
      // A job each: both threads have started (and the background one lowered itself) once they answer.
      const data = randomBytes(4096);
      const job = () => ({ nonce: randomBytes(12), aad: Buffer.alloc(8), data });
      const [a, b] = await Promise.all([normal.run(job()), background.run(job())]);
      assert.equal(a.data.length, data.length);
      assert.equal(b.data.length, data.length);
      const started = [...threadNices()].filter(([tid]) => !before.has(tid));
      const ownNice = before.get(process.pid)!;
      assert.deepEqual(
        started.map(([, nice]) => nice).filter((nice) => nice === 19),
        [19],
        `new threads' nices: ${JSON.stringify(started)}`,
      );
      assert.ok(
        started.some(([, nice]) => nice === ownNice),
        `the default worker keeps the process's priority: ${JSON.stringify(started)}`,
      );
    } finally {
      normal.close();
      background.close();
    }
  });
});
