// The helper appliance starts from the state saved right after its first
// boot: the first cold `files cat IMG:PATH` on a stick boots it and saves its
// state; the next cold one loads that state instead (the same kernel boot
// goes on: /proc/sys/kernel/random/boot_id, which the save read and
// recorded, is the saved boot's; a fresh boot has another), with its
// clock set and its RNG's vmgenid device bound; a state damaged on the stick
// is refused (its hash), the command still answers from a fresh boot, and a
// new state is saved. Two boots and one resume of the appliance.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, openSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { applianceExec, findAppliance } from '../../src/appliance/appliance-client.ts';
import { applianceStateDir } from '../../src/appliance/appliance-state.ts';
import { stickLayout } from '../../src/stick/layout.ts';
import { removeDir, tempDir } from '../dyntable/helpers.ts';
import { freshStick, launcher, repoRoot } from './harness.ts';

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('launcher files: the appliance resumed from its saved state', function () {
  this.timeout(1_800_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  let dir: string;
  let image: string;
  const content = randomBytes(256 * 1024);
  const files = (args: string[]) => launcher(['files', ...args, '--stick', stick.root], { timeout: 600_000 });
  const stateFiles = () => readdirSync(applianceStateDir(stickLayout(stick.root))).sort();
  const stateMeta = () =>
    JSON.parse(
      readFileSync(
        join(
          applianceStateDir(stickLayout(stick.root)),
          stateFiles().find((name) => name.endsWith('.json'))!,
        ),
        'utf8',
      ),
    ) as {
      sha256: string;
      bootId: string;
      savedAt: string;
    };

  /** A cold `files cat IMG:/data.bin` (no appliance running), its stderr, and the bytes it printed. */
  async function coldCat(): Promise<{ bytes: Buffer; stderr: string }> {
    assert.equal(await findAppliance(stickLayout(stick.root)), undefined, 'no appliance runs before a cold cat');
    const cat = await execa(join(repoRoot, 'launcher'), ['files', 'cat', `${image}:/data.bin`, '--stick', stick.root], {
      encoding: 'buffer',
      stripFinalNewline: false,
      reject: false,
      timeout: 600_000,
      env: { NO_COLOR: '1' },
    });
    const stderr = Buffer.from(cat.stderr).toString();
    assert.equal(cat.exitCode, 0, stderr);
    return { bytes: Buffer.from(cat.stdout), stderr };
  }

  /** A shell command in the running appliance, as root. */
  async function inAppliance(command: string): Promise<string> {
    const layout = stickLayout(stick.root);
    const address = await findAppliance(layout);
    assert.ok(address, 'the appliance runs');
    const out: Buffer[] = [];
    const remote = await applianceExec(layout, address, ['/bin/sh', '-c', command], { stdout: (data) => out.push(data) > 0, stderr: () => true });
    remote.end();
    await remote.outcome;
    return Buffer.concat(out).toString('utf8').trim();
  }

  before(async () => {
    const built = await execa('node', ['build.js', 'payload', '--guest', 'appliance'], { cwd: repoRoot, reject: false, timeout: 1_500_000 });
    assert.equal(built.exitCode, 0, String(built.stderr));
    stick = await freshStick();
    dir = tempDir('pocketvm-appliance-resume-');
    mkdirSync(join(dir, 'tree'));
    writeFileSync(join(dir, 'tree', 'data.bin'), content);
    image = join(dir, 'ext4.img');
    await execa('truncate', ['-s', '32M', image]);
    await execa('mke2fs', ['-q', '-t', 'ext4', '-d', join(dir, 'tree'), image]);
  });

  after(async () => {
    if (stick) {
      await files(['close', '--all']);
      await stick.dispose();
    }
    if (dir) removeDir(dir);
  });

  let savedBoot: string;

  it('boots the first time and saves its state for the next start', async () => {
    const first = await coldCat();
    assert.equal(sha(first.bytes), sha(content));
    assert.match(first.stderr, /booted; its state saved for the next start/);
    const saved = stateFiles();
    assert.equal(saved.length, 2, saved.join(' '));
    assert.ok(saved[0]!.endsWith('.json') && saved[1]!.endsWith('.vmstate'));
    savedBoot = await inAppliance('cat /proc/sys/kernel/random/boot_id');
    assert.match(savedBoot, /^[0-9a-f-]{36}$/);
    assert.equal(stateMeta().bootId, savedBoot, 'the state is of this boot');
    assert.equal((await files(['close', '--all'])).exitCode, 0);
  });

  it('resumes rather than boots on the next cold files cat, with the same bytes, its clock set and vmgenid bound', async () => {
    const second = await coldCat();
    assert.equal(sha(second.bytes), sha(content));
    assert.match(second.stderr, /resumed from its saved state/);
    assert.doesNotMatch(second.stderr, /booted/);
    assert.equal(await inAppliance('cat /proc/sys/kernel/random/boot_id'), savedBoot, 'the saved boot goes on: no new boot');
    const guestNow = Number(await inAppliance('date +%s'));
    assert.ok(Math.abs(guestNow * 1000 - Date.now()) < 30_000, `the guest's clock is the host's (${guestNow})`);
    assert.match(await inAppliance('ls /sys/bus/acpi/drivers/vmgenid'), /QEMUVGID/, 'the generation id that reseeds its RNG on load is bound');
    assert.equal((await files(['close', '--all'])).exitCode, 0);
  });

  it('refuses a damaged state, still answers from a fresh boot, and saves a new state', async () => {
    const state = join(
      applianceStateDir(stickLayout(stick.root)),
      stateFiles().find((name) => name.endsWith('.vmstate'))!,
    );
    const size = statSync(state).size;
    const fd = openSync(state, 'r+');
    writeSync(fd, randomBytes(4096), 0, 4096, Math.floor(size / 2));
    closeSync(fd);
    const third = await coldCat();
    assert.equal(sha(third.bytes), sha(content));
    assert.match(third.stderr, /saved state could not be loaded \(.*\); booting it afresh and saving a new one/);
    assert.match(third.stderr, /booted; its state saved for the next start/);
    const fresh = await inAppliance('cat /proc/sys/kernel/random/boot_id');
    assert.notEqual(fresh, savedBoot, 'a new boot');
    const meta = stateMeta();
    assert.equal(meta.bootId, fresh, 'the new state is of the new boot');
    assert.equal(meta.sha256, sha(readFileSync(state)), 'the new state is whole and recorded');
  });
});
