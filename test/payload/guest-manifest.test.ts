import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { PayloadError } from '../../src/errors.ts';
import { parseManifest } from '../../src/payload/guest-manifest.ts';
import { validManifest } from './guest-manifest-fixture.ts';

const valid = validManifest;

function problems(value: unknown): string[] {
  try {
    parseManifest(JSON.stringify(value), 'guest.json');
  } catch (error) {
    assert.ok(error instanceof PayloadError);
    assert.equal(error.exitCode, 4);
    return error.details['problems'] as string[];
  }
  assert.fail('the manifest was accepted');
}

describe('guest manifest', () => {
  it('accepts the shipped default manifest', async () => {
    const manifest = parseManifest(await readFile(new URL('../../payload/default/guest.json', import.meta.url), 'utf8'), 'guest.json');
    assert.equal(manifest.name, 'default');
    assert.ok(manifest.memory.recommendedMiB >= manifest.memory.minimumMiB);
  });

  it('fills defaults', () => {
    assert.equal(parseManifest(JSON.stringify(valid), 'g').readyTimeoutSeconds, 180);
  });

  it('names each bad field', () => {
    const found = problems({ ...valid, memory: { minimumMiB: 'lots', recommendedMiB: 256 }, cpus: { minimum: 0, recommended: 1 } });
    assert.equal(found.length, 2);
    assert.match(found[0]!, /^memory\.minimumMiB: /);
    assert.match(found[1]!, /^cpus\.minimum: /);
  });

  it('refuses payload paths that leave the guest folder', () => {
    for (const kernel of ['../vmlinuz', '/boot/vmlinuz', '..', 'a/b']) {
      assert.match(problems({ ...valid, kernel })[0]!, /^kernel: a plain file name/);
    }
  });

  it('refuses unknown fields, missing fields and inconsistent sizes', () => {
    assert.match(problems({ ...valid, extra: 1 }).join(), /Unrecognized key/);
    const { initrd: _initrd, ...withoutInitrd } = valid;
    assert.match(problems(withoutInitrd).join(), /^initrd: /);
    assert.match(problems({ ...valid, memory: { minimumMiB: 512, recommendedMiB: 256 } }).join(), /memory\.recommendedMiB: must be at least/);
  });

  it("takes execEnv (what launcher exec adds) and refuses a name that is not an environment name", () => {
    const env = { DISPLAY: ':0', XAUTHORITY: '/run/pocketvm/Xauthority' };
    assert.deepEqual(parseManifest(JSON.stringify({ ...valid, execEnv: env }), 'g').execEnv, env);
    assert.match(problems({ ...valid, execEnv: { 'LD_PRELOAD=x': 'y' } }).join(), /^execEnv\./);
    assert.match(problems({ ...valid, execEnv: { PATH: 1 } }).join(), /^execEnv\.PATH: /);
  });

  it('reports invalid JSON in one line', () => {
    assert.throws(() => parseManifest('{"schemaVersion": 1,', 'x/guest.json'), /x\/guest.json is not valid JSON/);
  });
});
