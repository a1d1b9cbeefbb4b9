// `launcher audit`: a whole session (login, boot, guest writes, eject) traced
// (boots the real guest once) writes nothing on the host but its private
// runtime directory, which is gone afterwards; and a QEMU that writes a host
// file (a wrapper named by POCKETVM_QEMU, no boot) fails the audit with the
// path named.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, readdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { AuditReport } from '../../src/audit/host-audit.ts';
import { addStickUser, freshStick, launcher, launcherJson, loginArgs } from './harness.ts';

const passphrase = 'audit test passphrase';
const hasStrace = spawnSync('strace', ['-V']).status === 0;

(hasStrace ? describe : describe.skip)('launcher audit (strace; boots the real guest once)', function () {
  this.timeout(600_000);
  let stick: Awaited<ReturnType<typeof freshStick>>;
  before(async () => {
    stick = await freshStick();
    await addStickUser(stick.root, 'auditor', passphrase);
  });
  after(async () => {
    await launcher(['stop', '--force', '--stick', stick.root]);
    await stick.dispose();
  });

  it('a whole session writes no host path; the private runtime directory is listed and gone', async () => {
    const {
      exitCode,
      json: report,
      stderr,
    } = await launcherJson<AuditReport>(['audit', '--stick', stick.root, ...loginArgs('auditor')], { input: `${passphrase}\n` });
    assert.equal(exitCode, 0, `${report.summary}\n${stderr}`);
    assert.equal(report.ok, true);
    assert.deepEqual(
      report.steps.map((s) => [s.step, s.exitCode]),
      [
        ['run', 0],
        ['guest-writes', 0],
        ['eject', 0],
      ],
    );
    assert.deepEqual(report.hostWrites, []);
    assert.equal(report.runtime.length, 1);
    assert.match(report.runtime[0]!.path, /\/pocketvm-[A-Za-z0-9]{6}$/);
    assert.equal(report.runtime[0]!.gone, true);
    assert.deepEqual(report.leftoverProcesses, []);
    assert.deepEqual(report.incomplete, []);
    // The trace really covered QEMU and the detached session, and saw the stick being written.
    assert.ok(report.programs.includes('qemu-system-x86_64'), report.programs.join(', '));
    assert.ok(report.tracedProcesses >= 5);
    assert.ok(report.stickWrites >= 5);
    // Devices and the checkout's compile cache are listed, never as host writes.
    for (const finding of report.allowed) assert.ok(['device', 'process', 'checkout'].includes(finding.class), JSON.stringify(finding));
    // The traces were on the stick, and are removed.
    assert.deepEqual(
      (await readdir(join(stick.root, 'run'))).filter((name) => name.startsWith('audit-')),
      [],
    );
    assert.equal(existsSync(join(stick.root, 'run', 'lock.json')), false);
  });

  it('a host file written during the session fails the audit (exit 16) and is named', async () => {
    const marker = join(dirname(stick.root), 'written-by-qemu');
    const wrapper = join(dirname(stick.root), 'qemu-that-writes');
    await writeFile(wrapper, `#!/bin/sh\necho oops > '${marker}'\nexit 1\n`);
    await chmod(wrapper, 0o755);
    const result = await launcher(['audit', '--stick', stick.root, ...loginArgs('auditor')], {
      input: `${passphrase}\n`,
      env: { NO_COLOR: '1', POCKETVM_QEMU: wrapper },
    });
    assert.equal(result.exitCode, 16, result.stderr);
    assert.match(result.stdout, new RegExp(`HOST WRITE +${marker.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} +\\(open\\(write\\) by (sh|qemu-that-writes|dash)`));
    assert.match(result.stderr, /pocketvm: error: 1 host path written: .*written-by-qemu; run failed/);
  });
});
