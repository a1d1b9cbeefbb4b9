// Extra launcher-only channels on the real guest: a serial port in
// MachineSpec.serialPorts appears in the guest under its name, and what the
// guest writes there arrives on machine.channel(id) (and back).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { linuxHost } from '../../src/hostprobe/linux.ts';
import { openGuestPayload } from '../../src/payload/guest-payload.ts';
import { Machine } from '../../src/vmm/machine.ts';
import { fdChannels } from '../../src/vmm/qemu-process.ts';
import { repoRoot } from './harness.ts';

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
    const payload = await openGuestPayload(join(repoRoot, 'payload'), 'default');
    let attachedStream: Duplex | undefined;
    machine = await Machine.boot({
      spec: {
        name: 'pocketvm-channel-test',
        hostOs: 'linux',
        accelerator: 'tcg',
        memoryMiB: 256,
        cpus: 1,
        kernel: payload.kernel,
        initrd: payload.initrd,
        cmdline: payload.manifest.cmdline,
        disks: [],
        network: 'none',
        channels: fdChannels(['echo', 'raw']),
        serialPorts: [{ id: 'echo', name: 'org.pocketvm.test.0' }],
        streams: ['raw'],
        startPaused: true,
      },
      binary: 'qemu-system-x86_64',
      host: linuxHost,
      logs: { qemu: join(logDir, 'qemu.log'), console: join(logDir, 'console.log') },
      signOfLifeTimeoutMs: 120_000,
      readyTimeoutMs: 120_000,
      attach: async (_qmp, channels) => {
        attachedStream = channels['echo'];
      },
    });
    const port = machine.channel('echo');
    assert.equal(port, attachedStream, 'attach saw the same stream');
    assert.throws(() => machine!.channel('nope'), /no channel nope/);
    const received = once(port, 'data');
    const reply = machine.agent.run('/bin/sh', ['-c', 'exec 3<>/dev/virtio-ports/org.pocketvm.test.0; echo hello-from-guest >&3; head -n1 <&3'], { timeoutMs: 30_000 });
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
