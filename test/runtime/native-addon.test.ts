import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PocketError } from '../../src/errors.ts';
import { addonFileName, loadAddon, resolveAddon } from '../../src/runtime/native-addon.ts';
import { addonDirOfExecutable, stickRootOfExecutable } from '../../src/runtime/self.ts';
import { addonFilesFor, addonPlugin } from '../../build/stick/addons.ts';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('native addon resolution', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pocketvm-addon-'));
    // A stand-in for a `.node` file: require() loads by extension, and a
    // JavaScript module proves the path without compiling anything.
    await writeFile(join(dir, 'fake.js'), 'module.exports = { loadedFrom: __filename };\n');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('names an addon <name>.node and refuses names that are paths', () => {
    assert.equal(addonFileName('argon2'), 'argon2.node');
    assert.throws(() => addonFileName('../evil'), PocketError);
    assert.throws(() => addonFileName('a/b'), PocketError);
  });

  it('in the executable: beside the executable, in its own folder', () => {
    const location = { packaged: true, executableDir: join('/stick', '.pocketvm', 'bin', 'linux-x64'), codeRoot: '/stick' };
    assert.throws(
      () => resolveAddon('argon2', 'argon2', location),
      (error: PocketError) => error.message.includes(join('/stick', '.pocketvm', 'bin', 'linux-x64')) && error.hint !== undefined,
    );
  });

  it('in the executable: finds and loads the file that is there (never from a temp folder)', async () => {
    await writeFile(join(dir, 'probe.node'), 'not a real addon');
    const location = { packaged: true, executableDir: dir, codeRoot: '/nowhere' };
    assert.equal(resolveAddon('probe', 'probe', location), join(dir, 'probe.node'));
  });

  it("from source: resolves through the checkout's node_modules", () => {
    const location = { packaged: false, executableDir: '/unused', codeRoot: dir };
    assert.equal(resolveAddon('fake', './fake.js', location), join(dir, 'fake.js'));
    assert.deepEqual(loadAddon<{ loadedFrom: string }>('fake', './fake.js', location), { loadedFrom: join(dir, 'fake.js') });
  });

  it("the stick builder puts each listed addon beside its platform's executable, and names those it has none for", async () => {
    const addons = [{ name: 'fake', module: 'fake', kind: 'node-gyp-build' as const, prebuilt: { 'linux-x64': { file: 'fake.js' } } }];
    assert.deepEqual(await addonFilesFor(dir, 'linux-x64', addons), { files: [{ source: join(dir, 'fake.js'), name: 'fake.node' }], missing: [] });
    assert.deepEqual(await addonFilesFor(dir, 'win-x64', addons), { files: [], missing: ['fake'] });
  });

  it('the bundle loads node-gyp-build and napi-rs addons through loadAddon, never from node_modules', async () => {
    const entry = join(dir, 'entry.mjs');
    await writeFile(entry, "import argon2 from 'argon2';\nexport const k = () => import('@napi-rs/keyring');\nexport default argon2;\n");
    const addons = [
      { name: 'argon2', module: 'argon2', kind: 'node-gyp-build' as const, prebuilt: {} },
      { name: 'keyring', module: '@napi-rs/keyring', kind: 'napi-rs' as const, prebuilt: {} },
    ];
    const esbuild = await import('esbuild');
    const result = await esbuild.build({
      entryPoints: [entry],
      bundle: true,
      write: false,
      platform: 'node',
      format: 'cjs',
      absWorkingDir: root,
      nodePaths: [join(root, 'node_modules')],
      plugins: [addonPlugin(root, addons)],
      logLevel: 'silent',
    });
    const code = result.outputFiles[0]!.text;
    assert.match(code, /loadAddon\d*\("argon2", "argon2"\)/);
    assert.match(code, /loadAddon\d*\("keyring", "@napi-rs\/keyring"\)/);
    assert.doesNotMatch(code, /node-gyp-build/);
    assert.doesNotMatch(code, /keyring-linux-x64-gnu/);
  });
});

describe('stick root of the executable', () => {
  it('is three levels up from .pocketvm/bin/<platform>/launcher', () => {
    assert.equal(stickRootOfExecutable(join('/media', 'stick', '.pocketvm', 'bin', 'linux-x64', 'launcher')), join('/media', 'stick'));
  });
  it('is its own folder for a copy at the root (launcher.exe)', () => {
    assert.equal(stickRootOfExecutable(join('/media', 'stick', 'launcher.exe')), join('/media', 'stick'));
  });
  it('addons: beside the executable in .pocketvm/bin/<platform>/, or there for the copy at the root', () => {
    assert.equal(
      addonDirOfExecutable(join('/media', 'stick', '.pocketvm', 'bin', 'linux-x64', 'launcher')),
      join('/media', 'stick', '.pocketvm', 'bin', 'linux-x64'),
    );
    assert.equal(addonDirOfExecutable(join('/media', 'stick', 'launcher.exe'), 'win-x64'), join('/media', 'stick', '.pocketvm', 'bin', 'win-x64'));
  });
});
