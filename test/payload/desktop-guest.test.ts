// The desktop image's recipe is one img's build step accepts, and the
// constants the tests and benchmarks look for (wallpaper colour, session-ready
// marker) are the ones the image's session scripts use.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readImageRecipe } from '../../build/image/recipe.ts';
import { DESKTOP_READY_MARKER, DESKTOP_WALLPAPER, desktopConf } from '../../src/payload/desktop-guest.ts';

const dir = fileURLToPath(new URL('../../images/desktop/', import.meta.url));

describe('the desktop image recipe (images/desktop)', () => {
  it('is a valid image recipe with a Debian system, a hook and systemd as init', async () => {
    const recipe = await readImageRecipe(join(dir, 'recipe.json'));
    // Not /sbin/init: in merged-/usr Debian that is an absolute symlink, which the
    // initramfs cannot follow into the system disk before switch_root.
    assert.equal(recipe.init, '/usr/lib/systemd/systemd');
    assert.equal(recipe.hook, 'hook.sh');
    for (const name of ['xserver-xorg-core', 'openbox', 'xterm', 'pcmanfm', 'mousepad', 'firefox-esr', 'spice-vdagent', 'qemu-guest-agent', 'locales', 'tzdata']) {
      assert.ok(recipe.mmdebstrap?.packages.includes(name), name);
    }
  });

  it("brings the payload's network step and udhcpc, and gives launcher exec the person's display", async () => {
    const recipe = await readImageRecipe(join(dir, 'recipe.json'));
    for (const path of ['etc/pocketvm/boot.d/35-network.sh', 'lib/pocketvm', 'bin/busybox']) assert.ok(recipe.payloadTree.includes(path), path);
    assert.equal(recipe.guest.network, 'user');
    assert.deepEqual(recipe.guest.execEnv, { DISPLAY: ':0', XAUTHORITY: '/run/pocketvm/Xauthority' });
    // The session and the cookie the exec environment names.
    const session = await readFile(join(dir, 'rootfs/usr/lib/pocketvm/desktop-session'), 'utf8');
    assert.match(session, /^auth=\/run\/pocketvm\/Xauthority$/m);
    assert.match(session, /^Xorg :0 /m);
    assert.match(await readFile(join(dir, 'hook.sh'), 'utf8'), /systemctl enable pocketvm-network\.service/);
  });

  it('carries the wallpaper colour and the session-ready marker the tests look for', async () => {
    assert.equal(await readFile(join(dir, 'rootfs/etc/pocketvm/desktop.conf'), 'utf8'), desktopConf());
    assert.match(desktopConf(), new RegExp(`WALLPAPER='${DESKTOP_WALLPAPER.hex}'`));
    assert.equal(DESKTOP_WALLPAPER.hex, `#${DESKTOP_WALLPAPER.rgb.map((v) => v.toString(16).padStart(2, '0')).join('')}`);
    const session = await readFile(join(dir, 'rootfs/usr/lib/pocketvm/desktop-session'), 'utf8');
    assert.match(session, /echo "\$READY_MARKER" >\/dev\/console/);
    assert.match(desktopConf(), new RegExp(`READY_MARKER='${DESKTOP_READY_MARKER}'`));
  });
});
