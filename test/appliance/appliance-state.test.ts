// The appliance's saved state is keyed by what it depends on (the payload's
// checksums and manifest, QEMU's version, the machine's arguments, not the
// payload's paths), and a state that is missing, incomplete, damaged or
// another key's is never offered for loading.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applianceSpec } from '../../src/appliance/appliance-machine.ts';
import { applianceStateKey, applianceStatePaths, checkApplianceState } from '../../src/appliance/appliance-state.ts';
import type { GuestManifest } from '../../src/payload/guest-manifest.ts';
import type { GuestPayload } from '../../src/payload/guest-payload.ts';
import { stickLayout } from '../../src/stick/layout.ts';
import { removeDir, tempDir } from '../dyntable/helpers.ts';

const manifest = {
  schemaVersion: 1,
  name: 'appliance',
  description: 'test',
  kernel: 'vmlinuz',
  initrd: 'initrd.img',
  cmdline: 'console=ttyS0 rdinit=/init quiet',
  memory: { minimumMiB: 256, recommendedMiB: 384 },
  cpus: { minimum: 1, recommended: 1 },
  devices: { console: 'serial', agent: 'virtio-serial', network: 'none' },
  readyTimeoutSeconds: 180,
} as unknown as GuestManifest;

const QEMU = '7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)';

describe('the appliance saved state', () => {
  let dir: string;
  beforeEach(() => (dir = tempDir('pocketvm-appliance-state-')));
  afterEach(() => removeDir(dir));

  function payloadAt(folder: string, initrdSum: string): GuestPayload {
    const path = join(dir, folder);
    mkdirSync(path, { recursive: true });
    writeFileSync(join(path, 'SHA256SUMS'), `${'a'.repeat(64)}  vmlinuz\n${initrdSum.repeat(64)}  initrd.img\n`);
    return { dir: path, manifest, kernel: join(path, 'vmlinuz'), initrd: join(path, 'initrd.img') };
  }
  const key = (payload: GuestPayload, qemu = QEMU, accelerator: 'tcg' | 'kvm' = 'tcg') =>
    applianceStateKey(payload, qemu, { ...applianceSpec('linux', payload), accelerator });

  it('changes its key when the payload is rebuilt, QEMU changes or the machine does; not when the stick moves', async () => {
    const built = payloadAt('stick-a/payload/appliance', 'b');
    const same = await key(built);
    assert.equal(await key(payloadAt('elsewhere/payload/appliance', 'b')), same, 'the payload at another path is the same payload');
    assert.notEqual(await key(payloadAt('rebuilt/payload/appliance', 'c')), same, 'a rebuilt initramfs (another checksum) is another key');
    assert.notEqual(await key(built, '7.2.23 (Debian)'), same, "another QEMU's state is another key");
    assert.notEqual(await key(built, QEMU, 'kvm'), same, 'another accelerator is another key');
    const bigger = { ...built, manifest: { ...manifest, memory: { minimumMiB: 256, recommendedMiB: 512 } } as GuestManifest };
    assert.notEqual(await key(bigger), same, 'another memory size is another key');
  });

  it('offers a state only when its file and record are both there and agree', async () => {
    const layout = stickLayout(join(dir, 'stick'));
    const k = await key(payloadAt('p', 'b'));
    const paths = applianceStatePaths(layout, k);
    assert.equal(await checkApplianceState(layout, k), undefined, 'no state at all: nothing to say');
    mkdirSync(paths.dir, { recursive: true });
    writeFileSync(join(paths.dir, `${'0'.repeat(32)}.vmstate`), 'old');
    assert.match(JSON.stringify(await checkApplianceState(layout, k)), /another appliance payload, QEMU or machine/);
    writeFileSync(paths.state, Buffer.alloc(100));
    assert.match(JSON.stringify(await checkApplianceState(layout, k)), /incomplete/, 'a state without its record (a save cut short)');
    writeFileSync(paths.meta, '{ not json');
    assert.match(JSON.stringify(await checkApplianceState(layout, k)), /damaged/);
    const meta = { format: 1, key: k, sha256: 'f'.repeat(64), bytes: 99, savedAt: '', qemu: QEMU, accelerator: 'tcg', bootMs: 1, bootId: 'x' };
    writeFileSync(paths.meta, JSON.stringify(meta));
    assert.match(JSON.stringify(await checkApplianceState(layout, k)), /100 bytes where 99 were saved/, 'a truncated or grown file');
    writeFileSync(paths.meta, JSON.stringify({ ...meta, bytes: 100 }));
    assert.deepEqual(await checkApplianceState(layout, k), { usable: true, meta: { ...meta, bytes: 100 } });
  });
});
