import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AcceleratorVerdicts, bootWithFallback, planAccelerators } from '../../src/vmm/accelerator-fallback.ts';
import { BootAttemptError, type Machine } from '../../src/vmm/machine.ts';
import type { Accelerator } from '../../src/vmm/machine-spec.ts';

// These tests drive the fallback's decisions with boot attempts that fail the
// way real ones do (BootAttemptError reasons); the real broken /dev/kvm of
// this machine is exercised by test/integration.
const fakeMachine = (accelerator: Accelerator) => ({ spec: { accelerator } }) as unknown as Machine;
const attemptError = (reason: BootAttemptError['reason']) => new BootAttemptError(reason, `failed: ${reason}`, {});

describe('accelerator fallback', () => {
  let dir: string;
  let verdicts: AcceleratorVerdicts;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pocketvm-accel-'));
    verdicts = new AcceleratorVerdicts(join(dir, 'accelerators.json'), 'host-a');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('plans the usable hardware accelerator first and always ends with tcg', async () => {
    const plan = await planAccelerators('auto', [{ name: 'kvm', usable: true, reason: 'ok' }], verdicts);
    assert.deepEqual(plan.candidates, ['kvm', 'tcg']);
    const none = await planAccelerators('auto', [{ name: 'kvm', usable: false, reason: 'no /dev/kvm' }], verdicts);
    assert.deepEqual(none.candidates, ['tcg']);
    assert.match(none.notes[0]!, /no \/dev\/kvm/);
  });

  it('a named accelerator is used alone', async () => {
    assert.deepEqual((await planAccelerators('kvm', [], verdicts)).candidates, ['kvm']);
  });

  for (const reason of ['exited', 'no-sign-of-life'] as const) {
    it(`falls back to tcg when the accelerator ${reason}, tells once, and remembers it for this host`, async () => {
      const plan = await planAccelerators('auto', [{ name: 'kvm', usable: true, reason: 'ok' }], verdicts);
      const notices: string[] = [];
      const tried: Accelerator[] = [];
      const machine = await bootWithFallback({
        plan,
        verdicts,
        onFallback: (message) => notices.push(message),
        boot: async (accelerator) => {
          tried.push(accelerator);
          if (accelerator === 'kvm') throw attemptError(reason);
          return fakeMachine(accelerator);
        },
      });
      assert.equal(machine.spec.accelerator, 'tcg');
      assert.deepEqual(tried, ['kvm', 'tcg']);
      assert.equal(notices.length, 1);
      assert.match(notices[0]!, /kvm does not work on this host/);
      assert.equal((await verdicts.get('kvm'))?.verdict, 'broken');
      const next = await planAccelerators('auto', [{ name: 'kvm', usable: true, reason: 'ok' }], verdicts);
      assert.deepEqual(next.candidates, ['tcg']);
      // Another host on the same stick is not affected.
      const other = new AcceleratorVerdicts(join(dir, 'accelerators.json'), 'host-b');
      assert.deepEqual((await planAccelerators('auto', [{ name: 'kvm', usable: true, reason: 'ok' }], other)).candidates, ['kvm', 'tcg']);
    });
  }

  it('does not fall back when the guest itself fails (agent never ready), nor blame the accelerator', async () => {
    const plan = await planAccelerators('auto', [{ name: 'kvm', usable: true, reason: 'ok' }], verdicts);
    await assert.rejects(
      bootWithFallback({ plan, verdicts, onFallback: () => assert.fail('told'), boot: async () => Promise.reject(attemptError('not-ready')) }),
      /not-ready/,
    );
    assert.equal(await verdicts.get('kvm'), undefined);
  });

  it('remembers nothing when tcg fails too: the fault was not the accelerator', async () => {
    const plan = await planAccelerators('auto', [{ name: 'kvm', usable: true, reason: 'ok' }], verdicts);
    await assert.rejects(bootWithFallback({ plan, verdicts, onFallback: () => {}, boot: async () => Promise.reject(attemptError('exited')) }), /exited/);
    assert.equal(await verdicts.get('kvm'), undefined);
  });
});
