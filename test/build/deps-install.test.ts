// `node build.js deps` on a fresh clone (what `./launcher demo` runs first):
// npm's noise (about a hundred EBADENGINE warnings under an older Node) goes to
// .cache/npm-install.log, the person sees pocketvm's lines; when npm fails, the
// log's tail and its path. npm here is a stand-in on PATH that talks as npm
// does on a fresh clone; what is tested is build.js's handling of it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../integration/harness.ts';

const systemNode = spawnSync('sh', ['-c', 'command -v node'], { encoding: 'utf8' }).stdout.trim();

describe('node build.js deps: quiet npm', function () {
  this.timeout(60_000);
  let clone: string;

  beforeEach(() => {
    clone = mkdtempSync(join(tmpdir(), 'pocketvm-deps-'));
    copyFileSync(join(repoRoot, 'build.js'), join(clone, 'build.js'));
    copyFileSync(join(repoRoot, 'package.json'), join(clone, 'package.json'));
    copyFileSync(join(repoRoot, 'package-lock.json'), join(clone, 'package-lock.json'));
    const bin = join(clone, 'fake-bin');
    mkdirSync(bin);
    writeFileSync(
      join(bin, 'npm'),
      `#!/bin/sh
i=0
while [ $i -lt 100 ]; do echo "npm warn EBADENGINE Unsupported engine { package: 'pkg$i', required: { node: '>=24' } }" >&2; i=$((i+1)); done
echo "added 212 packages in 3s"
if [ -n "$FAKE_NPM_FAIL" ]; then echo "npm error code ECONNREFUSED" >&2; echo "npm error network request to https://registry.npmjs.org/ failed" >&2; exit 1; fi
mkdir -p node_modules/node/bin node_modules && ln -sf "${process.execPath}" node_modules/node/bin/node && echo '{}' > node_modules/.package-lock.json
`,
    );
    chmodSync(join(bin, 'npm'), 0o755);
  });
  afterEach(() => rmSync(clone, { recursive: true, force: true }));

  const deps = (env: Record<string, string> = {}) =>
    spawnSync(systemNode || process.execPath, ['build.js', 'deps'], {
      cwd: clone,
      encoding: 'utf8',
      env: { ...process.env, ...env, PATH: `${join(clone, 'fake-bin')}:${process.env['PATH']}` },
    });

  it("shows two lines of its own; npm's output is in .cache/npm-install.log", () => {
    const result = deps();
    assert.equal(result.status, 0, result.stderr);
    const lines = result.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 2, result.stderr);
    assert.match(
      lines[0]!,
      /^pocketvm: installing the npm dependencies, Node 24 among them \(npm ci; npm's output goes to \.cache\/npm-install\.log\) \.\.\.$/,
    );
    assert.match(lines[1]!, /^pocketvm: npm dependencies installed in \d+ s$/);
    assert.doesNotMatch(result.stderr + result.stdout, /EBADENGINE/);
    const log = readFileSync(join(clone, '.cache', 'npm-install.log'), 'utf8');
    assert.equal(log.match(/EBADENGINE/g)?.length, 100);
    assert.match(log, /added 212 packages/);
  });

  it("on npm's failure: the log's tail, its path, and npm's exit code", () => {
    const result = deps({ FAKE_NPM_FAIL: '1' });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /npm error network request to https:\/\/registry\.npmjs\.org\/ failed/);
    assert.match(
      result.stderr,
      new RegExp(`pocketvm: npm could not install the dependencies; its whole output is in ${join(clone, '.cache', 'npm-install.log').replace(/[.]/g, '\\.')}`),
    );
    assert.ok(result.stderr.split('\n').length < 30, 'only the tail of the log');
    assert.ok(!existsSync(join(clone, 'node_modules', '.package-lock.json')));
  });
});
