// The baseline several benches compare the launcher with: bare QEMU (TCG, no
// launcher, no namespace) booting a payload's kernel and initramfs until a marker
// shows on its serial console. One place, so every bench's baseline is the same
// machine: q35, the agent's virtio-serial port (the guest waits for it), no display.
import { spawn } from 'node:child_process';
import { READY_MARKER } from '../src/vmm/console-tap.ts';

export interface BareMachine {
  kernel: string;
  initrd: string;
  cmdline: string;
  memoryMiB: number;
  cpus?: number;
  /** `-cpu max` as the launcher asks for under TCG; left out, QEMU's default model. */
  cpuMax?: boolean;
  /** More arguments (a network card, `-nic none`). */
  extra?: string[];
}

export function bareQemuArgs(machine: BareMachine): string[] {
  return [
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-machine',
    'q35',
    '-accel',
    'tcg',
    ...(machine.cpuMax ? ['-cpu', 'max'] : []),
    '-m',
    `${machine.memoryMiB}M`,
    ...(machine.cpus ? ['-smp', String(machine.cpus)] : []),
    '-kernel',
    machine.kernel,
    '-initrd',
    machine.initrd,
    '-append',
    machine.cmdline,
    '-serial',
    'stdio',
    '-device',
    'virtio-serial-pci,id=vser0',
    '-chardev',
    'null,id=agent',
    '-device',
    'virtserialport,bus=vser0.0,chardev=agent,name=org.qemu.guest_agent.0',
    ...(machine.extra ?? []),
  ];
}

/** Milliseconds from spawn to `marker` on the console, and the console so far; QEMU is killed either way. */
export async function bootToMarker(machine: BareMachine, marker = READY_MARKER): Promise<{ ms: number; console: string }> {
  const started = performance.now();
  const child = spawn('qemu-system-x86_64', bareQemuArgs(machine), { stdio: ['ignore', 'pipe', 'ignore'] });
  let console = '';
  try {
    const ms = await new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        console += chunk.toString('latin1');
        if (console.includes(marker)) resolve(performance.now() - started);
      });
      child.on('exit', (code) => reject(new Error(`bare QEMU exited (${code}) before ${marker}`)));
    });
    return { ms, console };
  } finally {
    // The exit that follows this kill must not reject an already-settled promise.
    child.removeAllListeners('exit');
    child.kill('SIGKILL');
  }
}
