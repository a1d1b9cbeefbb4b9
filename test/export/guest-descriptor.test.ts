// What `launcher export` is asked to export: a guest made from a catalog image
// (guest create --from) is refused with one line naming the commands that do
// move its image (image adapt, image deploy), before anything is read or written.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { describeGuest } from '../../src/export/guest-descriptor.ts';
import { PocketError } from '../../src/errors.ts';
import { setProperty } from '../../src/guests/guest-config.ts';
import { commitGuest, createGuest, stageChange } from '../../src/guests/guest-lifecycle.ts';
import { guestPaths } from '../../src/guests/guest-store.ts';
import { stickLayout } from '../../src/stick/layout.ts';
import { USER_NETWORK_MAC } from '../../src/vmm/qemu-args.ts';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { makeStick, payloadBuilt } from '../guests/helpers.ts';

describe('describeGuest', () => {
  let root: string;
  beforeEach(() => {
    root = tempDir('pocketvm-describe-');
  });
  afterEach(() => removeDir(root));

  it('refuses a guest made from a catalog image, naming the image and what moves it', async () => {
    const layout = stickLayout(root);
    const paths = guestPaths(layout, 'deb');
    mkdirSync(paths.dir, { recursive: true });
    const source = { kind: 'image', name: 'debian-web', sha256: 'a'.repeat(64) };
    writeFileSync(paths.record, JSON.stringify({ format: 1, name: 'deb', source, config: {}, createdAt: new Date().toISOString() }));
    await assert.rejects(describeGuest(layout, 'deb'), (error: unknown) => {
      assert.ok(error instanceof PocketError, String(error));
      assert.equal(error.exit, 'exportSource');
      assert.equal(error.details.reason, 'catalog-image');
      assert.match(error.message, /catalog image debian-web/);
      assert.match(error.hint ?? '', /image adapt debian-web --for/);
      assert.equal(error.message.includes('\n'), false, 'one line');
      return true;
    });
  });

  it('refuses a name that is neither a guest nor a payload', async () => {
    await assert.rejects(describeGuest(stickLayout(root), 'nobody'), (error: unknown) => {
      assert.ok(error instanceof PocketError);
      assert.equal(error.details.reason, 'no-guest');
      return true;
    });
  });

  it("a guest's own MAC is its NIC's and the one its kernel command line names; without one, the stick's default", async function () {
    if (!payloadBuilt()) this.skip();
    this.timeout(60_000);
    const stick = await makeStick('pocketvm-describe-mac-');
    try {
      await createGuest(stick.layout, 'web', 'default');
      await stageChange(stick.layout, 'web', (config) => setProperty(config, 'network', 'user'));
      await commitGuest(stick.layout, 'web');
      assert.deepEqual((await describeGuest(stick.layout, 'web')).nics, [{ model: 'virtio-net', mac: USER_NETWORK_MAC, network: 'user' }]);
      await stageChange(stick.layout, 'web', (config) => setProperty(config, 'mac', '52:54:00:aa:bb:01'));
      await commitGuest(stick.layout, 'web');
      const described = await describeGuest(stick.layout, 'web');
      assert.deepEqual(described.nics, [{ model: 'virtio-net', mac: '52:54:00:aa:bb:01', network: 'user' }]);
      assert.match(described.boot.cmdline, / pocketvm\.net=52:54:00:aa:bb:01( |$)/);
    } finally {
      await stick.remove();
    }
  });
});
