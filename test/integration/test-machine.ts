// One real guest booted straight through Machine.boot under TCG, for the
// vmm-level integration tests (no stick, no session): the payload of this
// checkout, the machine's own QEMU, logs in `logDir`.
import { join } from 'node:path';
import { linuxHost } from '../../src/hostprobe/linux.ts';
import { openGuestPayload } from '../../src/payload/guest-payload.ts';
import { type BootAttemptOptions, Machine } from '../../src/vmm/machine.ts';
import type { MachineSpec } from '../../src/vmm/machine-spec.ts';
import { fdChannels } from '../../src/vmm/qemu-process.ts';
import { repoRoot } from './harness.ts';

export async function bootTestMachine(
  logDir: string,
  spec: Partial<MachineSpec> = {},
  options: Pick<BootAttemptOptions, 'attach' | 'guestRam' | 'life'> = {},
): Promise<Machine> {
  const payload = await openGuestPayload(join(repoRoot, 'payload'), 'default');
  return Machine.boot({
    spec: {
      name: 'pocketvm-test',
      hostOs: 'linux',
      accelerator: 'tcg',
      memoryMiB: 256,
      cpus: 1,
      kernel: payload.kernel,
      initrd: payload.initrd,
      cmdline: payload.manifest.cmdline,
      disks: [],
      network: 'none',
      channels: fdChannels(),
      startPaused: true,
      ...spec,
    },
    binary: 'qemu-system-x86_64',
    host: linuxHost,
    logs: { qemu: join(logDir, 'qemu.log'), console: join(logDir, 'console.log') },
    signOfLifeTimeoutMs: 120_000,
    readyTimeoutMs: 120_000,
    ...options,
  });
}
