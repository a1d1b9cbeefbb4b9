// Which of QEMU's own user interfaces this QEMU build has (`-display help`):
// Debian's qemu-system-x86 has none of gtk/sdl without qemu-system-gui, so
// `run --display window` asks before it launches.
import { execa } from 'execa';

export async function qemuDisplays(system: string): Promise<string[]> {
  const { stdout } = await execa(system, ['-display', 'help'], { reject: false, timeout: 15_000 });
  return String(stdout)
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => /^[a-z][a-z0-9-]*$/.test(line));
}
