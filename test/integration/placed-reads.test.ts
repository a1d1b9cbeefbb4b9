// Placed reads in the real guest: the namespace card's transport with guest
// RAM shared as a file (src/vmm/guest-ram.ts), so 9pnet_pocketvm pins a
// reader's pages and the launcher writes the Rread's data straight into them.
// Files read through /host must come out byte-identical (sha256) whatever the
// reader's buffer alignment, the mount must survive a reader killed mid-read
// (its pages stay pinned until the reply), and the same reads work with
// ordinary guest RAM (nothing placed, the guest copies). Placed writes, the
// mirror image (the launcher reads a Twrite's data from the writer's pages),
// must land byte-identical in the host folder, killed writers included, and
// so must many writers' frames sent while the launcher stops reading the card
// (the card's send ring full).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EthernetTransport } from '../../src/ninep/ethernet-transport.ts';
import { GuestRamFile } from '../../src/vmm/guest-ram.ts';
import type { Machine } from '../../src/vmm/machine.ts';
import { kickTransmitQueue } from '../../src/vmm/nic-tx-watchdog.ts';
import { NAMESPACE_CHANNEL_ID } from '../../src/session/namespace-channel.ts';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { bootWithNamespaceCard } from './namespace-card-guest.ts';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('placed reads in the real guest (/host with shared guest RAM)', function () {
  this.timeout(600_000);
  let base: string;
  let shared: string;
  const big = randomBytes(3 * 1024 * 1024 + 12_345);
  const small = randomBytes(5000);

  before(() => {
    base = tempDir('pocketvm-placed-');
    shared = join(base, 'shared');
    mkdirSync(shared);
    writeFileSync(join(shared, 'big.bin'), big);
    writeFileSync(join(shared, 'small.bin'), small);
  });
  after(() => removeDir(base));

  async function withGuest(
    place: boolean,
    body: (sh: (script: string) => Promise<string>, transport: EthernetTransport, machine: Machine) => Promise<void>,
  ): Promise<void> {
    const ram = place ? GuestRamFile.create(256) : undefined;
    if (ram && !(ram instanceof GuestRamFile)) throw new Error(`no shared guest RAM on this machine: ${ram.reason}`);
    const booted = await bootWithNamespaceCard(base, shared, { ...(ram ? { ram } : {}), shTimeoutMs: 300_000 });
    try {
      const { machine, transport, sh } = booted;
      assert.match(await sh('grep " /host 9p " /proc/mounts'), /trans=pocketvm/);
      await body(sh, transport, machine);
      await machine.shutdown();
    } finally {
      await booted.dispose();
    }
  }

  const checkReads = async (sh: (script: string) => Promise<string>) => {
    const hash = (out: string) => out.trim().split(/\s+/)[0];
    // Big page-aligned buffers (dd), a reader at an odd offset (tail), small reads (cat of a small file).
    assert.equal(hash(await sh('echo 3 >/proc/sys/vm/drop_caches; dd if=/host/big.bin bs=1M 2>/dev/null | sha256sum')), sha256(big));
    assert.equal(hash(await sh('dd if=/host/big.bin bs=4097 2>/dev/null | sha256sum')), sha256(big));
    assert.equal(hash(await sh('tail -c +12346 /host/big.bin | sha256sum')), sha256(big.subarray(12_345)));
    assert.equal(hash(await sh('sha256sum /host/big.bin')), sha256(big));
    assert.equal(hash(await sh('cat /host/small.bin | sha256sum')), sha256(small));
  };

  it('reads come out byte-identical when placed, also after a reader is killed mid-read, and with the transmit queue kicked from the host meanwhile', async () => {
    await withGuest(true, async (sh, transport, machine) => {
      await checkReads(sh);
      assert.ok(transport.counters.placed > 10, `reads were placed (${JSON.stringify(transport.counters)})`);
      // Killed readers: their pages stay pinned until the reply; the mount goes on.
      await sh('for i in 1 2 3 4 5; do dd if=/host/big.bin of=/dev/null bs=1M 2>/dev/null & p=$!; sleep 0.$i; kill -9 $p; wait $p; done; true');
      // The transmit watchdog's kick (src/vmm/nic-tx-watchdog.ts), through this QEMU's monitor and
      // the card's notify port, while reads go on: every one a notification QEMU did not need.
      await sh('(for i in 1 2 3 4 5 6; do dd if=/host/big.bin of=/dev/null bs=64k 2>/dev/null; done) >/dev/null 2>&1 & echo $! >/tmp/reader');
      for (let i = 0; i < 20; i++) assert.equal(await kickTransmitQueue(machine.qmp, NAMESPACE_CHANNEL_ID), true, 'the card has a notify port');
      await sh('p=$(cat /tmp/reader); while kill -0 $p 2>/dev/null; do sleep 0.2; done');
      await checkReads(sh);
      assert.doesNotMatch(await sh('dmesg'), /BUG|Oops|bad page|9pnet_pocketvm: .*(malformed|cut short|out of order)/);
    });
  });

  // Written in the guest from its tmpfs: the host file must match what the guest wrote.
  const checkWrites = async (sh: (script: string) => Promise<string>) => {
    const hash = (out: string) => out.trim().split(/\s+/)[0];
    const source = hash(await sh('head -c 3158001 /dev/urandom >/tmp/src; sha256sum /tmp/src'));
    // Page-aligned 1 MiB buffers (dd), sizes that end mid-page (bs=4097), a pipe's 64 KiB buffers (cat), at an offset (seek).
    await sh('dd if=/tmp/src of=/host/w1.bin bs=1M 2>/dev/null; dd if=/tmp/src of=/host/w2.bin bs=4097 2>/dev/null; cat /tmp/src | cat >/host/w3.bin');
    await sh('dd if=/tmp/src of=/host/w4.bin bs=100001 seek=3 2>/dev/null');
    for (const name of ['w1.bin', 'w2.bin', 'w3.bin']) assert.equal(sha256(readFileSync(join(shared, name))), source, name);
    const shifted = readFileSync(join(shared, 'w4.bin'));
    assert.ok(shifted.subarray(0, 300_003).equals(Buffer.alloc(300_003)), 'w4.bin: a hole before the seek');
    assert.equal(sha256(shifted.subarray(300_003)), source, 'w4.bin');
  };

  it('writes land byte-identical when placed, also after a writer is killed mid-write', async () => {
    await withGuest(true, async (sh, transport) => {
      await checkWrites(sh);
      assert.ok(transport.counters.writesPlaced > 10, `writes were placed (${JSON.stringify(transport.counters)})`);
      assert.equal(transport.counters.writesRefused, 0);
      // Killed writers: their pages stay pinned until the reply; the mount goes on.
      await sh('for i in 1 2 3 4 5; do dd if=/dev/zero of=/host/killed.bin bs=1M count=1000 2>/dev/null & p=$!; sleep 0.$i; kill -9 $p; wait $p; done; true');
      await checkWrites(sh);
      assert.doesNotMatch(await sh('dmesg'), /BUG|Oops|bad page|9pnet_pocketvm: .*(malformed|cut short|out of order|sending a request failed)/);
    });
  });

  it('without shared guest RAM the same reads are copied in the guest, the writes go in frames', async () => {
    await withGuest(false, async (sh, transport) => {
      await checkReads(sh);
      await checkWrites(sh);
      assert.equal(transport.counters.placed, 0);
      assert.equal(transport.counters.writesPlaced, 0, 'writes went in frames');
      // The launcher stops reading the card (its server busy, or a suspend's
      // quiesce): QEMU stops taking frames and the card's send ring (256)
      // fills while 64 writers each send a 1 MiB write (Twrites of up to
      // msize, 8 frames each in flight at once). The module waits for room
      // and sends every frame once; no request is lost.
      const writers = 64;
      const busy = async () => Number(await sh('cat /sys/module/9pnet_pocketvm/parameters/tx_busy'));
      const busyBefore = await busy();
      // Each writer opens its file first (an open is a round trip, which would wait on its own), then writes on a signal.
      await sh(
        `head -c 1048577 /dev/urandom >/tmp/one; rm -f /tmp/go /tmp/done.* /tmp/started.*; for i in $(seq ${writers}); do setsid sh -c "exec 3>/host/p$i.bin; touch /tmp/started.$i; until [ -e /tmp/go ]; do sleep 0.1; done; dd if=/tmp/one bs=1M >&3 2>/dev/null; touch /tmp/done.$i" </dev/null >/dev/null 2>&1 & done; true`,
      );
      await sh(`until [ $(ls /tmp/started.* 2>/dev/null | wc -l) -eq ${writers} ]; do sleep 0.2; done`);
      await transport.quiesce();
      // The agent's channel is not the card: the signal goes while the card is held; then a moment for the frames to pile up.
      await sh('touch /tmp/go; sleep 3');
      transport.resume();
      const one = await sh(`until [ $(ls /tmp/done.* 2>/dev/null | wc -l) -eq ${writers} ]; do sleep 0.2; done; sha256sum /tmp/one`);
      assert.ok((await busy()) > busyBefore, 'the send ring was full while the launcher did not read (the module counts each wait)');
      for (let i = 1; i <= writers; i++) assert.equal(sha256(readFileSync(join(shared, `p${i}.bin`))), one.trim().split(/\s+/)[0], `p${i}.bin`);
      assert.doesNotMatch(await sh('dmesg'), /BUG|Oops|bad page|9pnet_pocketvm: .*(malformed|cut short|out of order|sending a request failed)/);
    });
  });
});
