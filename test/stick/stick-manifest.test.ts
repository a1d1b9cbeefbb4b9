import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PayloadError, StickError, StickTamperedError } from '../../src/errors.ts';
import { MANIFEST_PATH, checkBeforeLaunch, componentOf, readManifest, sha256Of, verifyStick, writeManifest } from '../../src/stick/stick-manifest.ts';

const FILES: Record<string, string> = {
  launcher: '#!/bin/sh\n',
  '.pocketvm/bin/linux-x64/launcher': 'linux executable',
  '.pocketvm/bin/win-x64/launcher.exe': 'windows executable',
  '.pocketvm/qemu/linux-x64/bin/qemu-system-x86_64': 'qemu',
  'payload/default/initrd.img': 'initrd bytes',
  [`payload/default/base-${'a'.repeat(64)}.ext4`]: 'a base image',
  'payload/other/initrd.img': 'another guest',
  'README.txt': 'hello',
};

describe('stick manifest', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'pocketvm-manifest-'));
    await mkdir(join(root, '.pocketvm'), { recursive: true });
    for (const [path, text] of Object.entries(FILES)) {
      await mkdir(join(root, ...path.split('/').slice(0, -1)), { recursive: true });
      await writeFile(join(root, ...path.split('/')), text);
    }
    await writeManifest(root, Object.keys(FILES), '9.9.9');
  });
  afterEach(() => rm(root, { recursive: true, force: true }));

  it('records the sha256 and size of every file, sorted, and never itself', async () => {
    const manifest = await readManifest(root);
    assert.ok(manifest);
    assert.equal(manifest.version, '9.9.9');
    assert.deepEqual(Object.keys(manifest.files), Object.keys(FILES).sort());
    assert.equal(manifest.files['README.txt']!.sha256, await sha256Of(join(root, 'README.txt')));
    assert.equal(manifest.files['README.txt']!.bytes, 5);
    assert.ok(!(MANIFEST_PATH in manifest.files));
  });

  it('a stick as built verifies', async () => {
    const result = await verifyStick(root);
    assert.deepEqual(result.problems, []);
    assert.equal(result.checkedFiles, Object.keys(FILES).length);
  });

  it('names every missing file and every file that differs (same size too)', async () => {
    await rm(join(root, 'README.txt'));
    await writeFile(join(root, 'payload', 'default', 'initrd.img'), 'initrd bytez'); // same size
    await writeFile(join(root, '.pocketvm', 'bin', 'linux-x64', 'launcher'), 'longer linux executable');
    const { problems } = await verifyStick(root);
    assert.deepEqual(problems, [
      { path: '.pocketvm/bin/linux-x64/launcher', problem: 'differs', component: 'launcher' },
      { path: 'README.txt', problem: 'missing', component: 'other' },
      { path: 'payload/default/initrd.img', problem: 'differs', component: 'payload' },
    ]);
  });

  it('reports progress in bytes under one message', async () => {
    const events: Array<{ message: string; done: number; total: number }> = [];
    await verifyStick(root, (event) => events.push(event));
    assert.equal(new Set(events.map((e) => e.message)).size, 1);
    assert.equal(events.at(-1)!.done, events.at(-1)!.total);
  });

  it('a stick without a manifest: verify says so (exit 9); the launch check lets it through', async () => {
    await rm(join(root, ...MANIFEST_PATH.split('/')));
    assert.equal(await readManifest(root), undefined);
    await assert.rejects(verifyStick(root), StickError);
    await checkBeforeLaunch(root, 'default', 'linux-x64');
  });

  it('an invalid manifest is refused naming the field', async () => {
    const path = join(root, ...MANIFEST_PATH.split('/'));
    const manifest = JSON.parse(await readFile(path, 'utf8')) as { files: Record<string, { sha256: string }> };
    manifest.files['README.txt']!.sha256 = 'nope';
    await writeFile(path, JSON.stringify(manifest));
    await assert.rejects(readManifest(root), (error: StickTamperedError) => error.exitCode === 10 && /files\.README\.txt\.sha256/.test(error.message));
  });

  it("before a launch: checks this platform's launcher and this guest's payload only", async () => {
    await writeFile(join(root, '.pocketvm', 'bin', 'win-x64', 'launcher.exe'), 'other platform, damaged');
    await writeFile(join(root, 'payload', 'other', 'initrd.img'), 'other guest, damaged');
    await checkBeforeLaunch(root, 'default', 'linux-x64');
  });

  it('before a launch: leaves an image guest’s base to the launch’s own block checks (not hashed in full here)', async () => {
    await writeFile(join(root, 'payload', 'default', `base-${'a'.repeat(64)}.ext4`), 'a base imagf');
    await checkBeforeLaunch(root, 'default', 'linux-x64');
    assert.equal((await verifyStick(root)).problems.length, 1, '`launcher verify` still checks it in full');
  });

  it('before a launch: a damaged payload is a payload error (exit 4) naming the file', async () => {
    await writeFile(join(root, 'payload', 'default', 'initrd.img'), 'tampered!!!!');
    await assert.rejects(
      checkBeforeLaunch(root, 'default', 'linux-x64'),
      (error: PayloadError) => error.exitCode === 4 && error.message.includes('payload/default/initrd.img'),
    );
  });

  it('before a launch: a damaged launcher is refused with exit 10 naming the file', async () => {
    await writeFile(join(root, '.pocketvm', 'bin', 'linux-x64', 'launcher'), 'tampered');
    await assert.rejects(
      checkBeforeLaunch(root, 'default', 'linux-x64'),
      (error: StickTamperedError) => error.exitCode === 10 && error.message.includes('.pocketvm/bin/linux-x64/launcher'),
    );
  });

  it('sorts paths into components for messages and sizes', () => {
    assert.equal(componentOf('launcher.exe'), 'launcher');
    assert.equal(componentOf('.pocketvm/bin/darwin-x64/launcher'), 'launcher');
    assert.equal(componentOf('.pocketvm/qemu/win-x64/qemu-system-x86_64.exe'), 'qemu');
    assert.equal(componentOf('payload/default/vmlinuz'), 'payload');
    assert.equal(componentOf('.pocketvm/stick.json'), 'other');
  });
});
