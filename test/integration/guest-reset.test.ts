// A guest reset while placed reads run (src/vmm/guest-life.ts): `reboot -f`
// in the middle of a loop of 256 MiB reads from /host. QEMU stops the vCPUs
// instead of resetting; the transport cancels its placements and retires
// the old mounts before the guest is reset and continued, so no reply meant
// for the old kernel lands in the new one's pages. The new boot's files in
// RAM (its initramfs) and a file read from /host checksum right, and its
// kernel log shows no corruption. The guest's own power-off still ends QEMU.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { GuestLife } from '../../src/vmm/guest-life.ts';
import { GuestRamFile } from '../../src/vmm/guest-ram.ts';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { bootWithNamespaceCard } from './namespace-card-guest.ts';

const MiB = 1024 * 1024;

describe('guest reset during placed reads (reboot -f under a 256 MiB read loop)', function () {
  this.timeout(900_000);
  let base: string;
  let shared: string;
  const known = randomBytes(3 * MiB + 777);
  let bigHash: string;

  before(() => {
    base = tempDir('pocketvm-reset-');
    shared = join(base, 'shared');
    mkdirSync(shared);
    const fd = openSync(join(shared, 'known.bin'), 'w');
    writeSync(fd, known);
    closeSync(fd);
    // 256 MiB in 1 MiB blocks of distinct content.
    const hash = createHash('sha256');
    const big = openSync(join(shared, 'big.bin'), 'w');
    const block = randomBytes(MiB);
    for (let i = 0; i < 256; i++) {
      block.writeUInt32LE(i, 0);
      writeSync(big, block);
      hash.update(block);
    }
    closeSync(big);
    bigHash = hash.digest('hex');
  });
  after(() => removeDir(base));

  it('retires the transport before the new kernel runs: its RAM and reads checksum right, its log is clean', async () => {
    const ram = GuestRamFile.create(256);
    if (!(ram instanceof GuestRamFile)) throw new Error(`no shared guest RAM on this machine: ${ram.reason}`);
    const life = new GuestLife();
    const booted = await bootWithNamespaceCard(base, shared, { ram, life });
    try {
      const { machine: guest, transport, sh } = booted;
      const hashOf = (out: string) => out.trim().split(/\s+/)[0];
      // Files of the initramfs live in guest RAM: their checksums before the reset are the reference.
      const ramFiles = 'sha256sum /bin/busybox /init $(ls /lib/modules/*/kernel/drivers/net/virtio_net.ko* 2>/dev/null) 2>/dev/null';
      const before = await sh(ramFiles);
      assert.equal(hashOf(await sh('dd if=/host/big.bin bs=1M 2>/dev/null | sha256sum')), bigHash, 'a whole 256 MiB read before the reset');
      const placedBefore = transport.counters.placed;
      assert.ok(placedBefore > 100, `reads were placed (${JSON.stringify(transport.counters)})`);

      // The loop runs in the background; reboot -f comes in the middle of a read.
      await sh('(while :; do dd if=/host/big.bin of=/dev/null bs=1M 2>/dev/null; done) >/dev/null 2>&1 </dev/null & sleep 3');
      const placedAtReset = transport.counters.placed;
      assert.ok(placedAtReset > placedBefore, 'the loop was reading when the reset came');
      await guest.agent.run('/bin/sh', ['-c', 'reboot -f'], { timeoutMs: 10_000 }).catch(() => {});

      // The new boot answers its agent once it is up.
      await guest.agent.waitUntilReady({ timeoutMs: 600_000, attemptTimeoutMs: 1_000 });
      assert.ok(life.resets >= 1, 'the reset went through the launcher');
      assert.ok(guest.process.running);
      for (let i = 0; i < 120 && !(await sh('grep -c " /host 9p " /proc/mounts || true')).startsWith('1'); i++) await new Promise((r) => setTimeout(r, 1_000));
      // Let anything stale land, if it were ever going to.
      await new Promise((r) => setTimeout(r, 3_000));
      assert.equal(await sh(ramFiles), before, "the new boot's files in RAM are intact");
      assert.ok(transport.counters.retired > 0 || transport.counters.sessions > 1, JSON.stringify(transport.counters));
      assert.equal(hashOf(await sh('sha256sum /host/known.bin')), createHash('sha256').update(known).digest('hex'));
      assert.equal(hashOf(await sh('dd if=/host/big.bin bs=1M 2>/dev/null | sha256sum')), bigHash, 'a whole 256 MiB read after the reset');
      assert.ok(transport.counters.placed > placedAtReset, "the new boot's reads are placed too");
      const alarming = (await sh('dmesg'))
        .split('\n')
        .filter((line) =>
          /\bBUG\b|Oops|bad page|general protection|corrupted|Bad RIP|segfault|9pnet_pocketvm: .*(malformed|cut short|out of order)/.test(line),
        );
      assert.deepEqual(alarming, [], "the new kernel's log shows no corruption");

      // The guest's own power-off ends QEMU (it pauses, the launcher retires and quits).
      await guest.agent.run('/bin/sh', ['-c', 'poweroff -f'], { timeoutMs: 10_000 }).catch(() => {});
      const exit = await Promise.race([guest.process.exited, new Promise<'timeout'>((r) => setTimeout(r, 120_000, 'timeout'))]);
      assert.notEqual(exit, 'timeout', 'QEMU ended after the guest powered off');
      assert.equal(guest.state, 'stopped');
    } finally {
      await booted.dispose();
    }
  });
});
