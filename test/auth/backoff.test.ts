import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backoffDelaySeconds, LoginBackoff, MAX_DELAY_SECONDS } from '../../src/auth/backoff.ts';

describe('login back-off', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pocketvm-backoff-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('schedule: two free attempts, then 2, 4, 8 … s, capped', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(backoffDelaySeconds), [0, 0, 2, 4, 8, 16]);
    assert.equal(backoffDelaySeconds(50), MAX_DELAY_SECONDS);
  });

  it('survives a restart: a new instance on the same file sees the count and the wait', async () => {
    let now = 1_000_000;
    const path = join(dir, 'backoff.json');
    const first = new LoginBackoff(path, () => now);
    await first.recordFailure();
    await first.recordFailure();
    assert.equal(await first.waitSeconds(), 0);
    assert.deepEqual(await first.recordFailure(), { failures: 3, waitSeconds: 2 });
    const restarted = new LoginBackoff(path, () => now);
    assert.equal(await restarted.waitSeconds(), 2);
    now += 1_000;
    assert.equal(await restarted.waitSeconds(), 1);
    now += 1_000;
    assert.equal(await restarted.waitSeconds(), 0);
    assert.deepEqual(await restarted.recordFailure(), { failures: 4, waitSeconds: 4 });
    await restarted.reset();
    assert.equal(await new LoginBackoff(path, () => now).waitSeconds(), 0);
    await assert.rejects(readFile(path), /ENOENT/);
  });

  it('a damaged back-off file counts as more failures, never as none', async () => {
    const path = join(dir, 'backoff.json');
    await writeFile(path, '{"failures": "lots"');
    const backoff = new LoginBackoff(path);
    const { failures, waitSeconds } = await backoff.recordFailure();
    assert.ok(failures > 2 && waitSeconds > 0, `${failures} ${waitSeconds}`);
  });
});
