// `launcher demo` end to end on a fresh stick: the real payload under TCG,
// through the accelerator fallback when the host offers a (broken) /dev/kvm.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freshStick, hostHasKvmDevice, launcher, launcherJson, payloadKernelVersion, qemuPidsFor } from './harness.ts';

interface DemoJson {
  guest: string;
  accelerator: string;
  facts: { kernel: string; uptimeSeconds: number; memTotalKiB: number; cpus: number; hostname: string };
  timings: { readyMs: number; boot: { signOfLifeMs: number; readyMs: number } };
  shutdown: { step: string; attempts: Array<{ step: string; outcome: string }> };
}

describe('launcher demo (boots the real guest)', function () {
  this.timeout(300_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let run: { exitCode: number; json: DemoJson; stderr: string };

  before(async () => {
    stick = await freshStick();
    run = await launcherJson<DemoJson>(['demo', '--stick', stick.root]);
  });
  after(() => stick.dispose());

  it('succeeds and reports what the guest says about itself through the agent', async () => {
    assert.equal(run.exitCode, 0, run.stderr);
    assert.equal(run.json.guest, 'default');
    assert.equal(run.json.facts.kernel, await payloadKernelVersion());
    assert.equal(run.json.facts.hostname, 'pocketvm');
    assert.ok(run.json.facts.cpus >= 1);
    assert.ok(run.json.facts.memTotalKiB > 100 * 1024, `memTotalKiB ${run.json.facts.memTotalKiB}`);
    assert.ok(run.json.facts.uptimeSeconds > 0);
    assert.ok(run.json.timings.boot.signOfLifeMs <= run.json.timings.boot.readyMs);
  });

  it('reaches ready under TCG on this machine, telling the person once when kvm is given up', async () => {
    assert.equal(run.json.accelerator, 'tcg');
    const notices = run.stderr.split('\n').filter((line) => /does not work on this host/.test(line));
    // --json silences narration; the fallback notice is still not printed twice.
    assert.ok(notices.length <= 1, run.stderr);
    if (hostHasKvmDevice) {
      const verdicts = JSON.parse(await readFile(join(stick.root, '.pocketvm', 'accelerators.json'), 'utf8')) as Record<
        string,
        Record<string, { verdict: string; reason: string }>
      >;
      const [hostVerdicts] = Object.values(verdicts);
      assert.equal(hostVerdicts?.['kvm']?.verdict, 'broken', 'the broken kvm is remembered for this host');
    }
  });

  it('shuts the guest down cleanly through the ladder and leaves no QEMU and no lock', async () => {
    assert.ok(['agent', 'acpi'].includes(run.json.shutdown.step), JSON.stringify(run.json.shutdown));
    assert.deepEqual(await qemuPidsFor(stick.root), []);
    const status = await launcher(['status', '--stick', stick.root]);
    assert.equal(status.exitCode, 8, status.stderr);
  });

  it('a second demo on the same stick goes straight to TCG and prints the human summary', async () => {
    const second = await launcher(['demo', '--stick', stick.root]);
    assert.equal(second.exitCode, 0, second.stderr);
    assert.match(second.stdout, /pocketvm demo\s+ok/);
    assert.match(second.stdout, /guest kernel\s+\d+\.\d+/);
    assert.match(second.stdout, /agent ready\s+\d+\.\d s/);
    assert.doesNotMatch(second.stderr, /booting default under kvm/);
    assert.match(second.stderr, /booting default under tcg/);
  });
});
