// Disk creation for new users: QEMU's LUKS creation times PBKDF2 against a
// coarse CPU clock and used to fail ("Unable to get accurate CPU usage") for
// about one new disk in ten under load. Twenty disks in a row, each made once
// (no retry), with both cores kept busy, each then opened with its key.
// Test tier: integration (runs qemu-img and QEMU).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { createImage } from '../../src/vmm/encrypted-disk.ts';
import { QmpClient } from '../../src/vmm/qmp-client.ts';
import { bareQemuArgs, QEMU } from './bare-qemu.ts';

describe('encrypted disk creation', function () {
  this.timeout(3_600_000); // each creation times PBKDF2 for over 1 s of CPU; under load that is minutes
  const children: ChildProcess[] = [];
  let dir: string;
  let qmp: QmpClient;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pocketvm-disk-create-'));
    const qemu = spawn(QEMU, bareQemuArgs('none'), {
      stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
    });
    children.push(qemu);
    qmp = await QmpClient.connect(qemu.stdio[3] as Duplex, { timeoutMs: 30_000 });
    // CPU load beside QEMU, as when a new user's first launch competes with the host.
    children.push(spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  });

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('twenty new users in a row get their disk on the first try, under CPU load, and each opens with its key', async () => {
    for (let i = 0; i < 20; i++) {
      const key = randomBytes(32);
      const path = join(dir, `user${i}.qcow2`);
      const secretId = `key${i}`;
      await qmp.execute('object-add', { 'qom-type': 'secret', id: secretId, data: key.toString('hex'), format: 'raw' });
      try {
        await createImage(qmp, { path, key, id: `disk${i}`, serial: 's', bus: 'unused', sizeBytes: 64 * 1024 * 1024, jobTimeoutMs: 300_000 }, secretId);
        assert.ok(existsSync(path), `disk ${i} exists`);
        assert.ok(!existsSync(`${path}.partial`));
        // Opens with its key (a wrong key would be refused: QEMU checks the keyslot).
        await qmp.execute('blockdev-add', {
          driver: 'qcow2',
          'node-name': `open${i}`,
          file: { driver: 'file', filename: path },
          encrypt: { format: 'luks', 'key-secret': secretId },
        });
        await qmp.execute('blockdev-del', { 'node-name': `open${i}` });
      } finally {
        await qmp.execute('object-del', { id: secretId });
      }
    }
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', join(dir, 'user0.qcow2')], { encoding: 'utf8' })) as {
      'format-specific': { data: { encrypt: { format: string; 'hash-alg': string } } };
    };
    assert.equal(info['format-specific'].data.encrypt.format, 'luks');
  });
});
