import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { carryXattrs } from '../../src/appliance/local-xattrs.ts';

describe('files get: xattrs on the local copy', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'pocketvm-xattrs-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('sets the user.* ones with the host tool, skips trusted.* and security.* and says why', async () => {
    const file = join(dir, 'copy.bin');
    writeFileSync(file, 'x');
    const result = await carryXattrs(file, {
      'user.comment': Buffer.from('Grüße').toString('base64'),
      'user.bin': Buffer.from([0, 0xff]).toString('base64'),
      'security.selinux': Buffer.from('system_u:object_r:etc_t:s0').toString('base64'),
    });
    assert.deepEqual(result.carried, ['user.comment', 'user.bin']);
    assert.deepEqual(result.skipped, ['security.selinux']);
    assert.match(result.why ?? '', /only user\.\*/);
    const got = String((await execa('getfattr', ['-d', '-e', 'hex', '--absolute-names', file])).stdout);
    assert.match(got, /user\.comment=0x4772c3bcc39f65/);
    assert.match(got, /user\.bin=0x00ff/);
  });

  it('reports, never throws, when the file cannot take them', async () => {
    const result = await carryXattrs(join(dir, 'missing'), { 'user.a': Buffer.from('1').toString('base64') });
    assert.deepEqual(result, { carried: [], skipped: ['user.a'], why: result.why });
    assert.ok(result.why && result.why.length > 0);
  });

  it('does nothing for a file without any', async () => {
    assert.deepEqual(await carryXattrs(join(dir, 'none'), undefined), { carried: [], skipped: [] });
  });
});
