// Extra launcher-only channels on the real guest: a serial port in
// MachineSpec.serialPorts appears in the guest under its name, and what the
// guest writes there arrives on machine.channel(id) (and back).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { Machine } from '../../src/vmm/machine.ts';
import { fdChannels } from '../../src/vmm/qemu-process.ts';
import { bootTestMachine } from './test-machine.ts';

describe('extra channels (boots the real guest)', function () {
  this.timeout(180_000);
  let logDir: string;
  let machine: Machine | undefined;
  before(async () => {
    logDir = await mkdtemp(join(tmpdir(), 'pocketvm-channel-'));
  });
  after(async () => {
    machine?.kill();
    await machine?.process.exited;
    await rm(logDir, { recursive: true, force: true });
  });

  it('a serial port carries bytes both ways and is open before the guest runs', async () => {
    let attachedStream: Duplex | undefined;
    machine = await bootTestMachine(
      logDir,
      { name: 'pocketvm-channel-test', channels: fdChannels(['echo', 'raw']), serialPorts: [{ id: 'echo', name: 'org.pocketvm.test.0' }], streams: ['raw'] },
      {
        attach: async (_qmp, channels) => {
          attachedStream = channels['echo'];
        },
      },
    );
    const port = machine.channel('echo');
    assert.equal(port, attachedStream, 'attach saw the same stream');
    assert.throws(() => machine!.channel('nope'), /no channel nope/);
    const received = once(port, 'data');
    const reply = machine.agent.run('/bin/sh', ['-c', 'exec 3<>/dev/virtio-ports/org.pocketvm.test.0; echo hello-from-guest >&3; head -n1 <&3'], {
      timeoutMs: 30_000,
    });
    reply.catch(() => {});
    const [chunk] = (await received) as [Buffer];
    assert.equal(chunk.toString(), 'hello-from-guest\n');
    // The guest keeps the port open while it waits: Linux's virtio_console
    // drops what arrives on a port no process has open.
    port.write('hello-from-launcher\n');
    const result = await reply;
    assert.equal(result.stdout.toString().trim(), 'hello-from-launcher');
  });
});
