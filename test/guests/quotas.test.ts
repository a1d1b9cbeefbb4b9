// Per-user quotas (docs/guests.md, "Per-user quotas"): the sizes the owner
// gives, the memory a guest gets under its user's quota beside their running
// guests (or exit 35), what the disk quota counts on the stick (a qcow2 disk
// at its virtual size) and its refusal (exit 36), and the owner's command.
// Test tier: integration (qemu-img makes the qcow2 disks the disk quota counts at their virtual size; the owner's command runs the launcher)
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { DiskQuotaError, MemoryQuotaError, UsageError } from '../../src/errors.ts';
import type { Admins } from '../../src/guests/guest-admins.ts';
import { checkDiskQuota, userDiskBytes } from '../../src/session/disk-usage.ts';
import { fitMemoryQuota, parseQuotaSize, setQuota } from '../../src/session/user-quotas.ts';
import { diskRoomAtLaunch } from '../../src/session/launch/user-quota.ts';
import { StickLimits } from '../../src/session/stick-limits.ts';
import { stickLayout } from '../../src/stick/layout.ts';
import { payloadBuilt } from './helpers.ts';

const MiB = 1024 * 1024;
const launcherPath = new URL('../../launcher', import.meta.url).pathname;
const PASSPHRASE = 'quota test passphrase';

describe('per-user quotas: the rules', () => {
  it('reads sizes as the owner gives them, and refuses anything else', () => {
    assert.equal(parseQuotaSize('2G', 'memory'), 2048);
    assert.equal(parseQuotaSize('512M', 'memory'), 512);
    assert.equal(parseQuotaSize('1536', 'disk'), 1536);
    assert.equal(parseQuotaSize('1.5GiB', 'disk'), 1536);
    assert.equal(parseQuotaSize('none', 'disk'), undefined);
    for (const bad of ['', 'lots', '0', '-1G', '2X'])
      assert.throws(
        () => parseQuotaSize(bad, 'memory'),
        (error: unknown) => error instanceof UsageError && /not a memory quota; nothing was changed/.test(error.message),
      );
  });

  it('sets and lifts a quota without touching the grants', () => {
    const start: Admins = { owner: 'olga', grants: { bob: { work: ['login'] } } };
    let admins = setQuota(start, 'bob', { memoryMiB: 2048, diskMiB: 4096 });
    assert.deepEqual(admins.quotas, { bob: { memoryMiB: 2048, diskMiB: 4096 } });
    admins = setQuota(admins, 'bob', { memoryMiB: undefined });
    assert.deepEqual(admins.quotas, { bob: { diskMiB: 4096 } });
    admins = setQuota(admins, 'bob', { diskMiB: undefined });
    assert.deepEqual(admins.quotas, {});
    assert.deepEqual(admins.grants, { bob: { work: ['login'] } });
  });

  it("caps a guest's memory at what the user's running guests leave of the quota, down to its minimum; below it, exit 35 naming the quota", () => {
    const base = { user: 'bob', guest: 'play', wantedMiB: 1024, minimumMiB: 256 };
    assert.deepEqual(fitMemoryQuota({ ...base, quotaMiB: undefined, running: [{ guest: 'work', memoryMiB: 8000 }] }), { memoryMiB: 1024 });
    assert.deepEqual(fitMemoryQuota({ ...base, quotaMiB: 2048, running: [{ guest: 'work', memoryMiB: 1024 }] }), { memoryMiB: 1024 });
    const capped = fitMemoryQuota({ ...base, quotaMiB: 1536, running: [{ guest: 'work', memoryMiB: 1024 }] });
    assert.equal(capped.memoryMiB, 512);
    assert.match(capped.reason!, /bob's memory quota is 1536 MiB and work \(1024 MiB\) take 1024 MiB of it/);
    assert.throws(
      () => fitMemoryQuota({ ...base, quotaMiB: 1200, running: [{ guest: 'work', memoryMiB: 1024 }] }),
      (error: unknown) =>
        error instanceof MemoryQuotaError &&
        error.exitCode === 35 &&
        error.message === "bob's memory quota is 1200 MiB: work (1024 MiB) already takes 1024 MiB, leaving 176 MiB, and play needs 256 MiB at least",
    );
    // A saved state's memory cannot shrink: whole or refused.
    assert.throws(() => fitMemoryQuota({ ...base, quotaMiB: 1536, running: [{ guest: 'work', memoryMiB: 1024 }], fixed: true }), MemoryQuotaError);
  });
});

describe('per-user quotas: what the disk quota counts', function () {
  this.timeout(60_000);
  let parent: string;
  before(async () => {
    parent = await mkdtemp(join(tmpdir(), 'pocketvm-quotas-'));
  });
  after(async () => {
    if (parent) await rm(parent, { recursive: true, force: true });
  });

  it('counts a qcow2 disk at its virtual size, other files at their blocks, and refuses what would pass the quota (exit 36)', async () => {
    const layout = stickLayout(join(parent, 'stick'));
    const disks = join(layout.usersRoot, 'bob', 'disks');
    await mkdir(disks, { recursive: true });
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', join(disks, 'work.qcow2'), '512M']);
    await writeFile(join(layout.usersRoot, 'bob', 'note.bin'), Buffer.alloc(3 * MiB, 1));
    const used = await userDiskBytes(layout, 'bob');
    assert.ok(used >= 515 * MiB && used < 517 * MiB, `${used / MiB} MiB`);
    assert.equal(await checkDiskQuota({ layout, user: 'bob', quotaMiB: 600, adding: [], doing: 'starting work' }), used);
    await assert.rejects(
      checkDiskQuota({ layout, user: 'bob', quotaMiB: 600, adding: [{ what: 'a personal disk for play', bytes: 1024 * MiB }], doing: 'starting play' }),
      (error: unknown) =>
        error instanceof DiskQuotaError &&
        error.exitCode === 36 &&
        /^bob's disk quota is 600 MiB: their guests hold 51[56] MiB on the stick, and starting play would add a personal disk for play \(1024 MiB\)$/.test(
          error.message,
        ),
    );
  });

  it("leaves a guest's /host files what the rest of the user's data and the disks the launch makes leave of the quota", async () => {
    const layout = stickLayout(join(parent, 'stick2'));
    const files = join(layout.usersRoot, 'bob', 'guests', 'work', 'files');
    await mkdir(files, { recursive: true });
    await writeFile(join(files, 'big.bin'), Buffer.alloc(8 * MiB, 1));
    // 1024 MiB for the personal disk work does not have yet; its own files count themselves as the store opens.
    const room = await diskRoomAtLaunch({ layout, user: 'bob', guest: 'work', quotaMiB: 1100 });
    assert.ok(room > 75 * MiB && room <= 76 * MiB, `${room / MiB} MiB`);
    await assert.rejects(diskRoomAtLaunch({ layout, user: 'bob', guest: 'work', quotaMiB: 1000 }), DiskQuotaError);
    const limits = new StickLimits({ stickDir: layout.root, filesCapBytes: room });
    assert.equal(limits.files.capBytes, room);
    limits.files.adopt(8 * MiB);
    limits.files.charge(room - 8 * MiB);
    assert.throws(() => limits.files.charge(1), /at their quota/);
  });
});

describe('per-user quotas on a stick: guest quota', function () {
  this.timeout(300_000);
  let parent: string;
  let root: string;
  before(async function () {
    if (!payloadBuilt()) this.skip();
    parent = await mkdtemp(join(tmpdir(), 'pocketvm-quota-cli-'));
    root = join(parent, 'stick');
    await execa(launcherPath, ['init-stick', root]);
    for (const user of ['olga', 'bob']) await execa(launcherPath, ['user', 'add', user, '--passphrase-stdin', '--stick', root], { input: `${PASSPHRASE}\n` });
  });
  after(async () => {
    if (parent) await rm(parent, { recursive: true, force: true });
  });
  const as = async (user: string | undefined, args: string[]) => {
    const sign = user ? ['--user', user, '--passphrase-stdin'] : [];
    const result = await execa(launcherPath, ['guest', 'quota', ...args, ...sign, '--stick', root], { reject: false, input: user ? `${PASSPHRASE}\n` : '' });
    return { code: result.exitCode, stdout: String(result.stdout), stderr: String(result.stderr) };
  };

  it('the owner sets and shows quotas (--json); a user sees only their own; bad sizes change nothing', async () => {
    assert.equal(
      (await execa(launcherPath, ['guest', 'owner', 'olga', '--user', 'olga', '--passphrase-stdin', '--stick', root], { input: `${PASSPHRASE}\n` })).exitCode,
      0,
    );
    const set = await as('olga', ['bob', '--memory', '2G', '--disk', '4G', '--json']);
    assert.equal(set.code, 0, set.stderr);
    const view = JSON.parse(set.stdout) as { used: { diskMiB: number } };
    assert.ok(view.used.diskMiB >= 0 && view.used.diskMiB < 4, 'what bob holds: his key files, no disk yet');
    assert.deepEqual(view, { user: 'bob', memoryMiB: 2048, diskMiB: 4096, used: { memoryMiB: 0, diskMiB: view.used.diskMiB, running: [] } });
    assert.equal((await as('olga', ['bob', '--memory', 'lots'])).code, 2);
    assert.equal((await as('olga', ['nobody', '--memory', '1G'])).code, 2);
    assert.equal(JSON.parse((await as('bob', ['bob', '--json'])).stdout).memoryMiB, 2048, 'bob sees his own');
    for (const args of [['bob', '--memory', '8G'], ['olga'], []]) {
      const refused = await as('bob', args);
      assert.equal(refused.code, 32, `${args.join(' ')}: ${refused.stderr}`);
    }
    const all = await as('olga', ['--json']);
    assert.deepEqual(
      (JSON.parse(all.stdout) as Array<{ user: string }>).map((v) => v.user),
      ['bob'],
    );
    assert.equal(JSON.parse((await as('olga', ['bob', '--memory', 'none', '--json'])).stdout).memoryMiB, undefined);
  });
});
