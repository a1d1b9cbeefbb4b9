// The appliance's `inspect` operation (launcher image inspect, docs/image-store.md):
// the image is hot-plugged read-only at a free SCSI target, the appliance's
// pocketvm-inspect mounts each file system read-only and prints what it
// finds, and the disk is unplugged again. The report is returned as printed;
// the launcher's images layer turns it into facts.
import { basename } from 'node:path';
import { FilesError } from '../errors.ts';
import type { InspectRequest, InspectResult } from './appliance-protocol.ts';
import type { ApplianceMachine } from './appliance-machine.ts';
import { runInAppliance } from './guest-command.ts';
import { plugSource, unplugSource } from './source-disk.ts';
import { inspectSource, type SourceFormat } from './source-image.ts';

export async function inspectHandler(appliance: ApplianceMachine, request: InspectRequest, target: number): Promise<InspectResult> {
  const detected = await inspectSource(request.source);
  // The launcher names the format when it knows better than the header (a VHD's footer is at its end).
  const source = request.format ? { ...detected, format: request.format as SourceFormat } : detected;
  const started = performance.now();
  const plugged = await plugSource(appliance.machine.qmp, source, target, true).catch((cause: unknown) => {
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new FilesError(`QEMU cannot open ${source.path} as ${source.format}: ${message}`, { cause, details: { reason: 'unreadable' } });
  });
  try {
    const result = await runInAppliance(appliance.execs, ['/usr/bin/pocketvm-inspect', String(target)]);
    if (result.exitCode !== 0)
      throw new FilesError(`${basename(source.path)}: ${result.stderr.trim().split('\n').at(-1) || `inspection failed (exit ${result.exitCode})`}`, {
        details: { reason: 'no-disk' },
      });
    return { source: source.path, format: source.format, report: result.stdout, ms: Math.round(performance.now() - started) };
  } finally {
    await unplugSource(appliance.machine.qmp, plugged).catch(() => {});
  }
}
