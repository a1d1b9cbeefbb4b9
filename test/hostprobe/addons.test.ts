// The host probe's native addons (usb, drivelist, registry-js) in the
// self-contained executable: loaded through src/runtime/native-addon.ts from
// beside the executable, never through the packages' own loaders.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addonFilesFor, addonPlugin, installedAddons } from '../../build/stick/addons.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('host probe addons in the executable', function () {
  this.timeout(60_000);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pocketvm-probe-addons-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('the bundle routes usb, drivelist and registry-js to loadAddon', async () => {
    const entry = join(dir, 'entry.mjs');
    await writeFile(
      entry,
      "export const a = () => import('usb');\nexport const b = () => import('drivelist');\nexport const c = () => import('registry-js');\nexport const d = () => import('usb/index.js');\n",
    );
    const esbuild = await import('esbuild');
    const result = await esbuild.build({
      entryPoints: [entry],
      bundle: true,
      write: false,
      platform: 'node',
      format: 'cjs',
      absWorkingDir: root,
      nodePaths: [join(root, 'node_modules')],
      plugins: [addonPlugin(root)],
      logLevel: 'silent',
    });
    const code = result.outputFiles[0]!.text;
    assert.match(code, /loadAddon\d*\("usb", "usb"\)/);
    assert.match(code, /loadAddon\d*\("drivelist", "drivelist"\)/);
    assert.match(code, /loadAddon\d*\("registry", "registry-js"\)/);
    assert.doesNotMatch(code, /@node-usb\/usb-linux-x64-gnu/, "usb's own napi-rs loader is not bundled");
    assert.doesNotMatch(code, /build\/Release\/registry\.node/);
    assert.doesNotMatch(code, /function bindings\(/);
  });

  it('the linux-x64 stick carries usb.node and drivelist.node; registry.node only matters on Windows', async () => {
    const addons = installedAddons(root).filter((a) => ['usb', 'drivelist', 'registry'].includes(a.name));
    const linux = await addonFilesFor(root, 'linux-x64', addons);
    assert.deepEqual(linux.files.map((f) => f.name).sort(), ['drivelist.node', 'usb.node']);
    assert.deepEqual(linux.missing, []);
  });
});
