// The shutdown ladder on the real guest: each rung is taken only when the one
// above it does not end QEMU in time, and the result names the rung.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Machine } from '../../src/vmm/machine.ts';
import { bootTestMachine } from './test-machine.ts';

function bootTcg(logDir: string): Promise<Machine> {
  return bootTestMachine(logDir, { name: 'pocketvm-ladder-test' });
}

/** Stops guest services without waiting: the agent may be one of them. */
async function svDown(machine: Machine, ...services: string[]): Promise<void> {
  await machine.agent.exec('/bin/sh', ['-c', `sleep 0.2; sv down ${services.map((s) => `/etc/service/${s}`).join(' ')}`]);
  await new Promise((r) => setTimeout(r, 2_000));
}

const quick = { agentMs: 4_000, acpiMs: 6_000, quitMs: 5_000, killMs: 5_000 };
// Where a rung is meant to succeed, its wait is generous: an ACPI shutdown under
// TCG on a loaded machine can take longer than 6 s, and the ladder only waits
// as long as the guest needs.
const patientAcpi = { ...quick, acpiMs: 90_000 };

describe('shutdown ladder (boots the real guest)', function () {
  this.timeout(180_000);
  let logDir: string;
  let machine: Machine | undefined;
  beforeEach(async () => {
    logDir = await mkdtemp(join(tmpdir(), 'pocketvm-ladder-'));
  });
  afterEach(async () => {
    machine?.kill();
    await machine?.process.exited;
    await rm(logDir, { recursive: true, force: true });
  });

  it('without an agent, the ACPI power button ends it', async () => {
    machine = await bootTcg(logDir);
    await svDown(machine, 'qemu-ga');
    const result = await machine.shutdown(patientAcpi);
    assert.equal(result.step, 'acpi', JSON.stringify(result));
    assert.equal(result.attempts[0]?.step, 'agent');
    assert.notEqual(result.attempts[0]?.outcome, 'stopped');
    assert.equal(result.exit?.code, 0);
    assert.equal(machine.state, 'stopped');
  });

  it('with neither agent nor ACPI handler, QMP quit ends it', async () => {
    machine = await bootTcg(logDir);
    await svDown(machine, 'qemu-ga', 'acpid');
    const result = await machine.shutdown(quick);
    assert.equal(result.step, 'quit', JSON.stringify(result));
    assert.deepEqual(
      result.attempts.map((a) => a.step),
      ['agent', 'acpi', 'quit'],
    );
  });
});
