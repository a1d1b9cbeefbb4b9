// `launcher probe --json`: the real shim, on a minimal stick made here (a
// marker and a guest manifest are all probe reads; no payload build, no boot).
// Test tier: integration (runs the launcher as a process).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostProfileSchema } from '../../src/hostprobe/host-profile.ts';
import { addStickUser, launcher, launcherJson } from '../integration/harness.ts';
import { validManifest } from '../payload/guest-manifest-fixture.ts';

interface ProbeJson {
  profile: unknown;
  guest: string;
  sizing: { memoryMiB: number; cpus: number; reasons: string[] } | null;
  sizingError: { code: number; kind: string; message: string } | null;
  ignoredRegistryValues: Array<{ key: string; name: string; layer: string; data: string; reason: string }>;
}

describe('launcher probe', function () {
  this.timeout(60_000);
  let parent: string;
  let stick: string;
  before(async () => {
    parent = await mkdtemp(join(tmpdir(), 'pocketvm-probe-cli-'));
    stick = join(parent, 'stick');
    await mkdir(join(stick, '.pocketvm'), { recursive: true });
    await writeFile(join(stick, '.pocketvm', 'stick.json'), '{"format":1}\n');
    for (const [guest, memory] of [
      ['default', { minimumMiB: 128, recommendedMiB: 256 }],
      ['huge', { minimumMiB: 1 << 20, recommendedMiB: 1 << 20 }],
    ] as const) {
      await mkdir(join(stick, 'payload', guest), { recursive: true });
      await writeFile(join(stick, 'payload', guest, 'guest.json'), JSON.stringify({ ...validManifest, name: guest, memory }));
    }
  });
  after(() => rm(parent, { recursive: true, force: true }));

  it('--json: the profile, and the default guest sized with its reasons', async () => {
    const { exitCode, json } = await launcherJson<ProbeJson>(['probe', '--stick', stick]);
    assert.equal(exitCode, 0);
    const profile = HostProfileSchema.parse(json.profile);
    assert.equal(profile.stick?.root, await realpath(stick));
    assert.ok(profile.stick?.drive, JSON.stringify(profile.notes));
    assert.match(profile.fingerprint ?? '', /^[0-9a-f]{32}$/);
    assert.equal(json.guest, 'default');
    assert.equal(json.sizingError, null);
    assert.ok(json.sizing && json.sizing.memoryMiB >= 128 && json.sizing.memoryMiB <= 256);
    assert.equal(json.sizing.reasons.length, 2);
  });

  it('a guest this host cannot spare memory for: the refusal, with its exit code, and still the profile', async () => {
    const { exitCode, json } = await launcherJson<ProbeJson>(['probe', '--stick', stick, '--guest', 'huge']);
    assert.equal(exitCode, 0);
    assert.equal(json.sizing, null);
    assert.equal(json.sizingError?.code, 14);
    assert.match(json.sizingError?.message ?? '', /cannot spare the 1048576 MiB/);
    HostProfileSchema.parse(json.profile);
  });

  it('human output names the sections and the sizing; a bad guest name is a usage error', async () => {
    const human = await launcher(['probe', '--stick', stick]);
    assert.equal(human.exitCode, 0, human.stderr);
    for (const label of ['host', 'cpu', 'memory', 'accelerator', 'display', 'stick', 'locale', 'proxy', 'fingerprint'])
      assert.match(human.stdout, new RegExp(`^${label} `, 'm'));
    assert.match(human.stdout, /^guest default: \d+ MiB, \d+ vCPU/m);
    const bad = await launcher(['probe', '--stick', stick, '--guest', '../x']);
    assert.equal(bad.exitCode, 2);
  });

  it("sizes with the user's registry overrides (Machine\\MemoryMiB), as a launch would", async () => {
    await addStickUser(stick, 'rita', 'probe-pass-1');
    assert.equal((await launcher(['reg', 'set', '--stick', stick, 'Machine', 'MemoryMiB', '200', '--type', 'int32'])).exitCode, 0);
    const { exitCode, json } = await launcherJson<ProbeJson>(['probe', '--stick', stick, '--user', 'rita']);
    assert.equal(exitCode, 0);
    assert.equal(json.sizing?.memoryMiB, 200);
    assert.match(json.sizing?.reasons[0] ?? '', /Machine\\MemoryMiB/);
    assert.deepEqual(json.ignoredRegistryValues, []);
  });

  it('reports registry sizing values it ignores (Machine\\Cpus 0 or -3), and why', async () => {
    for (const cpus of ['0', '-3']) {
      assert.equal((await launcher(['reg', 'set', '--stick', stick, 'Machine', 'Cpus', cpus, '--type', 'int32'])).exitCode, 0);
      const { exitCode, json } = await launcherJson<ProbeJson>(['probe', '--stick', stick, '--user', 'rita']);
      assert.equal(exitCode, 0);
      assert.deepEqual(json.ignoredRegistryValues, [
        { key: 'Machine', name: 'Cpus', layer: 'user', data: cpus, reason: 'not a positive number, so the guest is sized without it' },
      ]);
      const text = await launcher(['probe', '--stick', stick, '--user', 'rita']);
      assert.match(text.stdout, new RegExp(`^  ignored Machine\\\\Cpus = ${cpus} \\(user layer\\): not a positive number`, 'm'));
    }
  });
});
