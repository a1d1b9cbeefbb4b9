// The shutdown ladder: ask the guest politely through its agent, then press
// the virtual power button (ACPI), then tell QEMU to quit, then kill it. Each
// rung is bounded; the result says which rung ended it, so a guest that needs
// the hard way is visible in logs and in `launcher stop`'s output.
import type { QemuExit } from './qemu-process.ts';
import type { QemuProcess } from './qemu-process.ts';
import type { GuestAgentClient } from './guest-agent-client.ts';
import type { QmpClient } from './qmp-client.ts';

export type ShutdownStep = 'agent' | 'acpi' | 'quit' | 'kill';

export interface ShutdownTimeouts {
  agentMs: number;
  acpiMs: number;
  quitMs: number;
  killMs: number;
}

/** Generous for TCG, where a guest's poweroff takes a few seconds. */
export const DEFAULT_SHUTDOWN_TIMEOUTS: ShutdownTimeouts = { agentMs: 20_000, acpiMs: 20_000, quitMs: 5_000, killMs: 5_000 };

export interface ShutdownAttempt {
  step: ShutdownStep;
  outcome: 'stopped' | 'timeout' | 'failed';
  ms: number;
  error?: string;
}

export interface ShutdownResult {
  /** The rung that ended QEMU, or `already-stopped`. */
  step: ShutdownStep | 'already-stopped';
  ms: number;
  attempts: ShutdownAttempt[];
  exit?: QemuExit;
}

interface LadderTarget {
  process: QemuProcess;
  qmp: QmpClient;
  agent: GuestAgentClient;
}

const ORDER: ShutdownStep[] = ['agent', 'acpi', 'quit', 'kill'];

function timeoutOf(step: ShutdownStep, timeouts: ShutdownTimeouts): number {
  return { agent: timeouts.agentMs, acpi: timeouts.acpiMs, quit: timeouts.quitMs, kill: timeouts.killMs }[step];
}

async function press(step: ShutdownStep, target: LadderTarget): Promise<void> {
  switch (step) {
    case 'agent':
      return target.agent.shutdown('powerdown');
    case 'acpi':
      return target.qmp.systemPowerdown();
    case 'quit':
      return target.qmp.quit();
    case 'kill':
      target.process.kill('SIGKILL');
  }
}

export async function runShutdownLadder(
  target: LadderTarget,
  timeouts: Partial<ShutdownTimeouts> = {},
  from: ShutdownResult['step'] = 'agent',
): Promise<ShutdownResult> {
  const limits = { ...DEFAULT_SHUTDOWN_TIMEOUTS, ...timeouts };
  const started = performance.now();
  const attempts: ShutdownAttempt[] = [];
  const start = from === 'already-stopped' ? 0 : ORDER.indexOf(from);
  for (const step of ORDER.slice(start)) {
    if (!target.process.running) break;
    const stepStart = performance.now();
    const limit = timeoutOf(step, limits);
    let error: string | undefined;
    try {
      await Promise.race([press(step, target), target.process.exited, new Promise((r) => setTimeout(r, limit).unref())]);
    } catch (failure) {
      // A rung that cannot even be pressed (agent gone, QMP closed) is skipped.
      error = failure instanceof Error ? failure.message : String(failure);
    }
    const remaining = Math.max(0, limit - (performance.now() - stepStart));
    const stopped =
      error === undefined &&
      (await Promise.race([target.process.exited.then(() => true), new Promise<boolean>((r) => setTimeout(r, remaining, false).unref())]));
    const ms = Math.round(performance.now() - stepStart);
    const attempt: ShutdownAttempt = { step, outcome: stopped || !target.process.running ? 'stopped' : error ? 'failed' : 'timeout', ms };
    if (error) attempt.error = error;
    attempts.push(attempt);
    if (attempt.outcome === 'stopped') {
      const exit = await target.process.exited;
      return { step, ms: Math.round(performance.now() - started), attempts, exit };
    }
  }
  const exit = await target.process.exited;
  const last = attempts.at(-1)?.step ?? 'kill';
  return { step: last, ms: Math.round(performance.now() - started), attempts, exit };
}
