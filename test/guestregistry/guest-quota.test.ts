// What the guest may write to registry.sqlite through its channel
// (src/guestregistry/guest-quota.ts), on a real registry file: a set past
// the room is refused with a line saying so and changes nothing, a del makes
// room, the running total matches a fresh count, and Storage\ (the limits
// themselves) is the host's alone.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { answer, escapeField, GUEST_EXIT } from '../../src/guestregistry/guest-channel.ts';
import { GuestRegistryQuota } from '../../src/guestregistry/guest-quota.ts';
import { GuestRegistry } from '../../src/guestregistry/registry.ts';

describe('guest registry quota', () => {
  let dir: string;
  let registry: GuestRegistry;
  let quota: GuestRegistryQuota;
  const told: string[] = [];
  let next = 0;

  /** One request as the guest's `reg` sends it; the reply's status line split up. */
  const request = (...args: string[]): { code: number; message: string } => {
    const reply = answer([`q${++next}`, ...args.map(escapeField)].join('\t'), registry, undefined, { quota, onFull: (m) => told.push(m) });
    const last = reply.trimEnd().split('\n').at(-1)!.split('\t');
    return last[1] === 'ok' ? { code: 0, message: '' } : { code: Number(last[2]), message: last[3] ?? '' };
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pocketvm-regquota-'));
    registry = GuestRegistry.open({ file: join(dir, 'registry.sqlite'), hostId: 'host-a' });
    told.length = 0;
  });
  afterEach(() => {
    registry.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a set past the total with a clear line (exit 4), changes nothing, and takes it after a del', () => {
    quota = new GuestRegistryQuota(registry, { totalBytes: 10_000, valueBytes: 8_000, values: 1000 });
    assert.deepEqual(request('set', 'App', 'a', 'string', 'x'.repeat(2000)), { code: 0, message: '' });
    assert.deepEqual(request('set', 'App', 'b', 'string', 'y'.repeat(2000)), { code: 0, message: '' });
    const refused = request('set', 'App', 'c', 'string', 'z'.repeat(2000));
    assert.equal(refused.code, GUEST_EXIT.failed);
    assert.match(
      refused.message,
      /^the registry is full: your layer holds 7 KiB and this value needs 3 KiB more, past the 9 KiB the guest may fill it to \(registry Storage\\RegistryQuotaKiB\); delete values with reg del$/,
    );
    assert.equal(registry.getInLayer('user', 'App', 'c'), undefined, 'nothing written');
    assert.equal(told.length, 1);
    assert.equal(quota.usage().full?.message, refused.message);
    // Rewriting a value no longer is fine when full; a del makes room.
    assert.equal(request('set', 'App', 'a', 'string', 'w'.repeat(1000)).code, 0);
    assert.equal(request('del', 'App', 'b').code, 0);
    assert.equal(quota.usage().full, undefined);
    assert.equal(request('set', 'App', 'c', 'string', 'z'.repeat(2000)).code, 0);
    assert.equal((registry.getInLayer('user', 'App', 'c') as { data: string }).data.length, 2000);
  });

  it('refuses a value over the per-value size (exit 2) and a value past the count (exit 4)', () => {
    quota = new GuestRegistryQuota(registry, { totalBytes: 1024 * 1024, valueBytes: 1000, values: 3 });
    const big = request('set', 'App', 'big', 'binary', Array.from({ length: 1001 }, () => '00').join(','));
    assert.equal(big.code, GUEST_EXIT.badRequest);
    assert.match(
      big.message,
      /^the value is 1001 bytes; a value set from the guest may be at most 1000 bytes \(registry Storage\\RegistryValueMaxKiB, set from the host\)$/,
    );
    for (const name of ['a', 'b', 'c']) assert.equal(request('set', 'App', name, 'int32', '1').code, 0);
    const many = request('set', 'App', 'd', 'int32', '1');
    assert.equal(many.code, GUEST_EXIT.failed);
    assert.match(many.message, /^the registry is full: your layer holds 3 values/);
    assert.equal(request('del', 'App').code, 0);
    assert.equal(quota.usage().values, 0);
    assert.equal(request('set', 'App', 'd', 'int32', '1').code, 0);
  });

  it('keeps a running total equal to a fresh count, the values the person set from the host included', () => {
    registry.set('user', 'Person', 'Theirs', { type: 'string', data: 'set with launcher reg' });
    registry.set('host', 'Other', 'Layer', { type: 'string', data: 'not counted: not the user layer' });
    quota = new GuestRegistryQuota(registry, { totalBytes: 1024 * 1024, valueBytes: 64 * 1024, values: 1000 });
    assert.equal(quota.usage().values, 1);
    for (let i = 0; i < 40; i++) request('set', `App\\K${i % 5}`, `v${i % 13}`, i % 2 ? 'string' : 'binary', i % 2 ? 'q'.repeat(i * 7) : '01,02,03');
    request('set', 'APP\\k1', 'V1', 'multi-string', 'a', 'bb', 'ccc');
    request('del', 'App\\K2');
    request('del', 'App\\K3', 'v3');
    request('del', 'App\\K4', 'not there');
    const fresh = new GuestRegistryQuota(registry, quota.limits);
    assert.deepEqual({ values: quota.usage().values, bytes: quota.usage().bytes }, { values: fresh.usage().values, bytes: fresh.usage().bytes });
    assert.ok(quota.usage().values > 20);
  });

  it('keeps Storage\\ for the host: the guest can neither set nor delete its own limits', () => {
    quota = new GuestRegistryQuota(registry);
    registry.set('user', 'Storage', 'FilesQuotaMiB', { type: 'int32', data: 64 });
    for (const args of [
      ['set', 'Storage', 'FilesQuotaMiB', 'int32', '999999'],
      ['set', 'storage\\x', 'y', 'int32', '1'],
      ['del', 'Storage', 'FilesQuotaMiB'],
      ['del', 'STORAGE'],
    ]) {
      const refused = request(...args);
      assert.equal(refused.code, GUEST_EXIT.badRequest, args.join(' '));
      assert.match(refused.message, /^Storage\\ holds the limits on what the guest writes to the stick; they are set from the host/);
    }
    assert.deepEqual(registry.getInLayer('user', 'Storage', 'FilesQuotaMiB'), { type: 'int32', data: 64 });
  });

  it('keeps Network\\ for the host: a guest cut off from the network cannot turn it back on for its next boot', () => {
    quota = new GuestRegistryQuota(registry);
    registry.set('user', 'Network', 'Enabled', { type: 'bool', data: false });
    for (const args of [
      ['set', 'Network', 'Enabled', 'bool', 'true'],
      ['set', 'network\\x', 'y', 'string', 'z'],
      ['del', 'Network', 'Enabled'],
      ['del', 'NETWORK'],
    ]) {
      const refused = request(...args);
      assert.equal(refused.code, GUEST_EXIT.badRequest, args.join(' '));
      assert.match(refused.message, /^Network\\ says whether the guest may use the network; it is set from the host/);
    }
    assert.deepEqual(registry.getInLayer('user', 'Network', 'Enabled'), { type: 'bool', data: false });
  });
});
