// The personal disk's virtio-blk device stops the guest on any failed write
// or read (werror=stop, rerror=stop), so the full-stick and I/O-error watch
// (src/session/stick-full.ts) sees a paused guest with the request kept, never
// an error handed to the guest's file system. Checked on the arguments and on
// what a real QEMU makes of them.
// Test tier: integration (starts QEMU).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { personalDiskDevice } from '../../src/vmm/encrypted-disk.ts';
import { QmpClient } from '../../src/vmm/qmp-client.ts';
import { bareQemuArgs, QEMU } from './bare-qemu.ts';

describe('the personal disk device', function () {
  this.timeout(120_000);

  it('asks for werror=stop and rerror=stop, with the write cache on', () => {
    const device = personalDiskDevice({ id: 'pvm-home', serial: 'pocketvm-home', bus: 'pvm-port0' });
    assert.equal(device['driver'], 'virtio-blk-pci');
    assert.equal(device['drive'], 'pvm-home');
    assert.equal(device['werror'], 'stop');
    assert.equal(device['rerror'], 'stop');
    assert.equal(device['write-cache'], 'on');
  });

  it('QEMU plugs it in with both error policies set to stop', async () => {
    let qemu: ChildProcess | undefined;
    let qmp: QmpClient | undefined;
    try {
      qemu = spawn(QEMU, bareQemuArgs('q35', '-device', 'pcie-root-port,id=pvm-port0,bus=pcie.0,chassis=1'), {
        stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
      });
      qmp = await QmpClient.connect(qemu.stdio[3] as Duplex, { timeoutMs: 60_000 });
      await qmp.execute('blockdev-add', { driver: 'null-co', 'node-name': 'pvm-home', size: 1024 * 1024 });
      await qmp.execute('device_add', personalDiskDevice({ id: 'pvm-home', serial: 'pocketvm-home', bus: 'pvm-port0' }));
      const werror = await qmp.execute('qom-get', { path: '/machine/peripheral/pvm-home-dev', property: 'werror' });
      const rerror = await qmp.execute('qom-get', { path: '/machine/peripheral/pvm-home-dev', property: 'rerror' });
      assert.equal(werror, 'stop');
      assert.equal(rerror, 'stop');
    } finally {
      await qmp?.close();
      qemu?.kill('SIGKILL');
    }
  });
});
