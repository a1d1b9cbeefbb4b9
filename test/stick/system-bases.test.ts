// An image guest's bases on a stick (docs/images.md, "A newer base"): an older
// base stays while some user's overlay was made over it, and `upgrade` moves
// one user onto the current base without touching their home. Overlays are
// made by qemu-img (their header is all that is read here).
// Test tier: integration (qemu-img makes the overlays)
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { execa } from 'execa';
import { UsageError } from '../../src/errors.ts';
import { stickLayout, systemOverlayPath, type StickLayout } from '../../src/stick/layout.ts';
import { removeUnusedBases, upgradeSystem } from '../../src/stick/system-bases.ts';
import { validManifest } from '../payload/guest-manifest-fixture.ts';

const OLD = `base-${'1'.repeat(64)}.ext4`;
const NEW = `base-${'2'.repeat(64)}.ext4`;
const UNUSED = `base-${'3'.repeat(64)}.ext4`;

describe('image guest bases on a stick', () => {
  let root: string;
  let layout: StickLayout;
  let guestDir: string;
  const overlayOver = async (user: string, base: string) => {
    const overlay = systemOverlayPath(layout, user, 'img');
    await mkdir(join(overlay, '..'), { recursive: true });
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', relative(join(overlay, '..'), join(guestDir, base)), '-F', 'raw', '-u', overlay, '1M']);
  };
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'pocketvm-bases-'));
    layout = stickLayout(root);
    guestDir = join(layout.payloadRoot, 'img');
    await mkdir(guestDir, { recursive: true });
    for (const base of [OLD, NEW, UNUSED]) await writeFile(join(guestDir, base), 'base');
    const image = { file: NEW, sha256: '2'.repeat(64), bytes: 4, init: '/init' };
    await writeFile(join(guestDir, 'guest.json'), JSON.stringify({ ...validManifest, name: 'img', kind: 'image', image }));
    await overlayOver('alice', OLD);
    await overlayOver('bob', OLD);
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it('removes only the bases neither current nor under an overlay', async () => {
    assert.deepEqual(await removeUnusedBases(layout, 'img', NEW), [UNUSED]);
    assert.deepEqual((await readdir(guestDir)).filter((name) => name.startsWith('base-')).sort(), [OLD, NEW]);
  });

  it('keeps every base when an overlay cannot be read', async () => {
    await writeFile(systemOverlayPath(layout, 'bob', 'img'), 'not a qcow2 file');
    assert.deepEqual(await removeUnusedBases(layout, 'img', NEW), []);
    assert.ok(existsSync(join(guestDir, UNUSED)));
  });

  it('upgrade deletes one user’s overlay, keeps their home disk, and the old base only while another overlay uses it', async () => {
    const home = join(layout.usersRoot, 'alice', 'disks', 'img.qcow2');
    await writeFile(home, 'home');
    const first = await upgradeSystem(layout, 'img', 'alice');
    assert.deepEqual(first, { previous: OLD, current: NEW, upgraded: true, removedBases: [UNUSED] });
    assert.ok(!existsSync(systemOverlayPath(layout, 'alice', 'img')));
    assert.ok(existsSync(home));
    assert.ok(existsSync(join(guestDir, OLD)), "bob's overlay still uses the old base");
    assert.equal((await upgradeSystem(layout, 'img', 'alice')).upgraded, false);
    const second = await upgradeSystem(layout, 'img', 'bob');
    assert.deepEqual(second.removedBases, [OLD]);
  });

  it('upgrade refuses a guest that is not an image guest', async () => {
    await writeFile(join(guestDir, 'guest.json'), JSON.stringify({ ...validManifest, name: 'img' }));
    await assert.rejects(upgradeSystem(layout, 'img', 'alice'), UsageError);
  });
});
