// kexec starts a new kernel with no reset QEMU sees, so the launcher cannot
// retire placed reads on its own (src/vmm/guest-life.ts). The guest says it:
// 9pnet_pocketvm's reboot notifier, which every reboot, power-off and kexec
// runs before device shutdown, sends a retire frame and waits for the
// launcher's answer, sent only after every placement is cancelled and every
// connection retired. `reboot -f` runs the same notifier (kernel_restart_prepare)
// as `kexec -e`; the launcher's counter and log show the guest's retirement
// came before QEMU's reset. The default payload also disables kexec itself.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GuestLife } from '../../src/vmm/guest-life.ts';
import { GuestRamFile } from '../../src/vmm/guest-ram.ts';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { bootWithNamespaceCard } from './namespace-card-guest.ts';

describe('the guest kernel going away (kexec, reboot, power-off) retires placed reads', function () {
  this.timeout(900_000);
  let base: string;
  let shared: string;

  before(() => {
    base = tempDir('pocketvm-kexec-');
    shared = join(base, 'shared');
    mkdirSync(shared);
    writeFileSync(join(shared, 'data.bin'), randomBytes(8 * 1024 * 1024));
  });
  after(() => removeDir(base));

  it('the module asks the launcher to retire before the kernel ends; kexec is disabled in the default guest', async () => {
    const ram = GuestRamFile.create(256);
    if (!(ram instanceof GuestRamFile)) throw new Error(`no shared guest RAM on this machine: ${ram.reason}`);
    const life = new GuestLife();
    // In order: the transport's lines and the launcher's reset (a participant that notes when it is retired).
    const events: string[] = [];
    life.add({ retire: async () => void events.push('qemu reset or power-off'), quiesce: async () => {}, resume: () => {} });
    const booted = await bootWithNamespaceCard(base, shared, { ram, life, log: (line) => events.push(line) });
    try {
      const { machine: guest, transport, sh } = booted;
      // Belt and braces: the default guest has no use for kexec, so its init turns it off (one-way until the next boot).
      assert.equal((await sh('cat /proc/sys/kernel/kexec_load_disabled')).trim(), '1');

      await sh('dd if=/host/data.bin of=/dev/null bs=1M 2>/dev/null');
      assert.ok(transport.counters.placed > 0, `reads were placed (${JSON.stringify(transport.counters)})`);
      assert.equal(transport.counters.guestRetires, 0);

      await guest.agent.run('/bin/sh', ['-c', 'reboot -f'], { timeoutMs: 10_000 }).catch(() => {});
      await guest.agent.waitUntilReady({ timeoutMs: 600_000, attemptTimeoutMs: 1_000 });
      assert.equal(transport.counters.guestRetires, 1, `the module's reboot notifier asked the launcher to retire (${JSON.stringify(transport.counters)})`);
      const asked = events.findIndex((line) => line.includes('the guest kernel is going away'));
      const reset = events.indexOf('qemu reset or power-off');
      assert.ok(asked >= 0 && reset > asked, `the guest's own retirement came before QEMU's reset: ${JSON.stringify(events)}`);
      assert.match(events[asked]!, /1 mount\(s\) retired/);

      // The new kernel mounts afresh and its reads are placed again.
      for (let i = 0; i < 120 && !(await sh('grep -c " /host 9p " /proc/mounts || true')).startsWith('1'); i++) await new Promise((r) => setTimeout(r, 1_000));
      const placed = transport.counters.placed;
      await sh('dd if=/host/data.bin of=/dev/null bs=1M 2>/dev/null');
      assert.ok(transport.counters.placed > placed, "the new kernel's reads are placed");
      assert.equal((await sh('dmesg | grep -c "launcher did not confirm" || true')).trim(), '0');

      // A power-off runs the same notifier.
      await guest.agent.run('/bin/sh', ['-c', 'poweroff -f'], { timeoutMs: 10_000 }).catch(() => {});
      const exit = await Promise.race([guest.process.exited, new Promise<'timeout'>((r) => setTimeout(r, 120_000, 'timeout'))]);
      assert.notEqual(exit, 'timeout', 'QEMU ended after the guest powered off');
      assert.equal(transport.counters.guestRetires, 2);
    } finally {
      await booted.dispose();
    }
  });
});
