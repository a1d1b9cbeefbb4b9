// virt-inspector for the two comparisons with `image inspect`
// (images.test.ts, image-windows.test.ts): run as the host has it, and where
// libguestfs finds no host kernel (this project's machines and CI) only when
// POCKETVM_TEST_LIBGUESTFS=payload-kernel asks for it, on the payload build's
// kernel with the appliance cached under .cache/libguestfs
// (bench/libguestfs-kernel.ts, shared with import.test.ts's virt-v2v).
// Not by default: even with that appliance already built, each run boots it
// under TCG (docs/testing.md has the figure), which CI's time does not have.
import { execa } from 'execa';
import { sharedLibguestfs } from '../../bench/libguestfs-kernel.ts';
import { repoRoot } from './harness.ts';

/** virt-inspector's XML for `disk`, or why it does not run here (the test skips and prints that). */
export async function virtInspector(disk: string): Promise<{ xml: string } | { skipped: string }> {
  const inspector = ['virt-inspector', '--no-applications', '--no-icon', '-a', disk];
  const lastLine = (stderr: unknown) => String(stderr).trim().split('\n').at(-1) ?? '';
  const run = await execa(inspector[0]!, inspector.slice(1), { reject: false, timeout: 1_200_000 });
  if (run.exitCode === 0) return { xml: String(run.stdout) };
  if (process.env['POCKETVM_TEST_LIBGUESTFS'] !== 'payload-kernel')
    return {
      skipped: `virt-inspector does not run here (${lastLine(run.stderr)}); POCKETVM_TEST_LIBGUESTFS=payload-kernel gives it the payload build's kernel`,
    };
  const guestfs = await sharedLibguestfs(repoRoot).catch((e: unknown) => e as Error);
  if (guestfs instanceof Error) return { skipped: `virt-inspector does not run here: ${guestfs.message}` };
  const [command, ...args] = guestfs.wrap(inspector);
  const started = performance.now();
  const again = await execa(command!, args, { reject: false, env: guestfs.env, timeout: 1_200_000 });
  if (again.exitCode !== 0) return { skipped: `virt-inspector does not run here: ${lastLine(again.stderr)}` };
  const built = guestfs.applianceCached ? 'appliance cached' : 'appliance built first';
  console.log(`      virt-inspector on the payload's kernel: ${((performance.now() - started) / 1000).toFixed(1)} s (${built})`);
  return { xml: String(again.stdout) };
}
