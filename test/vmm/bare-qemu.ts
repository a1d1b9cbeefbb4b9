// A QEMU with no guest for tests: TCG, nothing but what the test adds, paused
// (-S), its QMP monitor on inherited fd 3. The tests that need a real QEMU
// process but no guest start it with these arguments plus their own.
export const QEMU = process.env['POCKETVM_QEMU'] ?? 'qemu-system-x86_64';

export function bareQemuArgs(machine: 'none' | 'q35', ...extra: string[]): string[] {
  return [
    '-machine',
    machine,
    '-accel',
    'tcg',
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-S',
    '-chardev',
    'socket,id=qmp,fd=3',
    '-mon',
    'chardev=qmp,mode=control',
    ...extra,
  ];
}
