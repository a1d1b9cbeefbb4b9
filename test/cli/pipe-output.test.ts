// A command's output through a pipe is whole, byte for byte, --json included
// (Node queues what a pipe does not take at once; the launcher used to exit
// before the queue drained), and a reader that closes early (`| head -1`)
// ends it quietly: its own exit code, nothing on stderr. No guest boots here;
// `exec` through a pipe is in test/integration/session.test.ts.
// Test tier: integration (runs the launcher as a process).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { hostFingerprint } from '../../src/platform/host-fingerprint.ts';
import { GuestRegistry } from '../../src/guestregistry/registry.ts';
import { registryPaths, stickLayout } from '../../src/stick/layout.ts';
import { addStickUser, freshStick, launcherPath } from '../integration/harness.ts';

const run = promisify(execFile);

/** `launcher ARGS | READER` in a shell: the reader's output, and the launcher's exit code and stderr. */
async function piped(args: string[], reader: string): Promise<{ out: Buffer; launcherExit: number; launcherStderr: string }> {
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const script = `"$0" ${quoted} 2>"$1" | ${reader}; echo "\${PIPESTATUS[0]}" >"$2"`;
  const dir = (await run('mktemp', ['-d'])).stdout.trim();
  try {
    const { stdout } = await run('bash', ['-c', script, launcherPath, `${dir}/stderr`, `${dir}/status`], {
      encoding: 'buffer',
      maxBuffer: 256 * 1024 * 1024,
      env: { ...process.env, NO_COLOR: '1' },
    });
    const { readFile } = await import('node:fs/promises');
    return { out: stdout, launcherExit: Number((await readFile(`${dir}/status`, 'utf8')).trim()), launcherStderr: await readFile(`${dir}/stderr`, 'utf8') };
  } finally {
    await run('rm', ['-rf', dir]);
  }
}

const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

describe('output through a pipe', function () {
  this.timeout(300_000);
  let stick: { root: string; dispose: () => Promise<void> };
  let expected: string;

  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'alice', 'alice passphrase');
    // Over 10 MiB of export: 10,500 values of 1 KiB under one key.
    const layout = stickLayout(stick.root);
    const registry = GuestRegistry.open({ file: registryPaths(layout, 'alice', 'default').file, hostId: await hostFingerprint(layout.hostSalt) });
    try {
      const filler = 'x'.repeat(1000);
      const lines = ['REGEDIT4', '', '[HKEY_POCKETVM\\Software\\Big]'];
      for (let i = 0; i < 10_500; i++) lines.push(`"value-${String(i).padStart(5, '0')}"="${i}:${filler}"`);
      registry.importReg(`${lines.join('\r\n')}\r\n`, 'user', { source: 'test' });
      expected = registry.exportReg({ key: 'Software\\Big', layer: 'user', format: 'regedit4' });
    } finally {
      registry.close();
    }
    assert.ok(Buffer.byteLength(expected) > 10 * 1024 * 1024, `the export is ${Buffer.byteLength(expected)} bytes`);
  });
  after(() => stick.dispose());

  const exportArgs = (key = 'Software\\Big') => ['reg', 'export', '--stick', stick.root, '--key', key, '--layer', 'user', '--format', 'regedit4'];

  it('reg export: over 10 MiB through `| cat`, byte for byte', async () => {
    const { out, launcherExit, launcherStderr } = await piped(exportArgs(), 'cat');
    assert.equal(launcherExit, 0, launcherStderr);
    assert.equal(out.length, Buffer.byteLength(expected));
    assert.equal(sha(out), sha(expected));
  });

  it('reg export --json: over 10 MiB of JSON through `| cat`, byte for byte', async () => {
    const { out, launcherExit, launcherStderr } = await piped([...exportArgs(), '--json'], 'cat');
    assert.equal(launcherExit, 0, launcherStderr);
    const document = `${JSON.stringify({ user: 'alice', format: 'regedit4', text: expected }, null, 2)}\n`;
    assert.equal(out.length, Buffer.byteLength(document));
    assert.equal(sha(out), sha(document));
  });

  it('a reader that closes early (`| head -1`) ends the launcher quietly, with its own exit code', async () => {
    for (const extra of [[], ['--json']]) {
      const { out, launcherExit, launcherStderr } = await piped([...exportArgs(), ...extra], 'head -1');
      assert.equal(out.toString(), extra.length ? '{\n' : 'REGEDIT4\r\n');
      assert.equal(launcherExit, 0, launcherStderr);
      assert.equal(launcherStderr, '');
    }
  });

  it('accepts the root prefix the exported file prints: --key HKEY_POCKETVM\\Software\\Big', async () => {
    const { out, launcherExit, launcherStderr } = await piped(exportArgs('HKEY_POCKETVM\\Software\\Big'), 'cat');
    assert.equal(launcherExit, 0, launcherStderr);
    assert.equal(sha(out), sha(expected));
    assert.match(expected, /^\[HKEY_POCKETVM\\Software\\Big\]$/m);
  });
});
