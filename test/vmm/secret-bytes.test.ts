import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpClient } from '../../src/vmm/qmp-client.ts';
import { hexBytes } from '../../src/vmm/secret-bytes.ts';

describe('key material as bytes, not strings', () => {
  it('hexBytes spells a key as Buffer.toString("hex") would', () => {
    for (const key of [Buffer.alloc(0), Buffer.from([0, 255, 16, 1]), randomBytes(32)]) assert.equal(hexBytes(key).toString('latin1'), key.toString('hex'));
  });

  it('a QMP secret goes on the wire inside the command, and the wire buffer is zeroed once written', async () => {
    // A real socket, as QMP's is: the kernel has the bytes when the write completes.
    const dir = mkdtempSync(join(tmpdir(), 'qmp-secret-'));
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(join(dir, 'qmp.sock'), resolve));
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const ours = connect(join(dir, 'qmp.sock'));
    const qemu = await accepted;
    let sentWire: Buffer | undefined;
    const write = ours.write.bind(ours) as (chunk: unknown, cb?: () => void) => boolean;
    ours.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (Buffer.isBuffer(chunk)) sentWire = chunk;
      return write(chunk, ...(rest as [() => void]));
    }) as typeof ours.write;
    qemu.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      if (text.includes('qmp_capabilities')) qemu.write('{"return": {}}\n');
      else if (text.includes('object-add')) {
        const request = JSON.parse(text) as { id: string; arguments: Record<string, string> };
        assert.deepEqual(request.arguments, { 'qom-type': 'secret', id: 'k', format: 'raw', data: 'c0ffee00' });
        // Give the client's write callback its turn before answering.
        setImmediate(() => qemu.write(`{"return": {}, "id": "${request.id}"}\n`));
      }
    });
    qemu.write('{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""}, "capabilities": []}}\n');
    const qmp = await QmpClient.connect(ours);
    const secret = Buffer.from('c0ffee00');
    await qmp.execute('object-add', { 'qom-type': 'secret', id: 'k', format: 'raw' }, { secret: { field: 'data', bytes: secret } });
    assert.ok(sentWire && sentWire.length > 50, 'the command went as one buffer');
    assert.ok(
      sentWire.every((b) => b === 0),
      "the buffer written to QEMU's socket is zeroed after the write",
    );
    await assert.rejects(qmp.execute('object-add', {}, { secret: { field: 'data', bytes: Buffer.from('a"b') } }), /printable ASCII/);
    ours.destroy();
    qemu.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
