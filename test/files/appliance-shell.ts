// Runs a shell script as root inside a stick's running helper appliance,
// through the same exec channel `launcher files` uses. The corpus needs it
// where the host's tools need root (a block device, device-mapper): LVM and
// md RAID are made by lvm and mdadm inside the appliance, on a disk that
// `files open --rw` plugged in.
import { findAppliance, applianceExec } from '../../src/appliance/appliance-client.ts';
import { openStick } from '../../src/stick/stick-root.ts';

export async function applianceShell(stickRoot: string, script: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const layout = await openStick(stickRoot);
  const address = await findAppliance(layout);
  if (!address) throw new Error(`no appliance runs for ${stickRoot}`);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const remote = await applianceExec(layout, address, ['/bin/sh', '-c', script], {
    stdout: (data) => out.push(data) > 0,
    stderr: (data) => err.push(data) > 0,
  });
  remote.end();
  const outcome = await remote.outcome;
  const exitCode = outcome.kind === 'exit' ? (outcome.signal ? 128 + outcome.signal : outcome.exitCode) : outcome.exitCode;
  return { exitCode, stdout: Buffer.concat(out).toString('utf8'), stderr: outcome.kind === 'failed' ? outcome.message : Buffer.concat(err).toString('utf8') };
}
