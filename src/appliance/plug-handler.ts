// The appliance's `plug` and `unplug` operations (launcher image capture,
// docs/image-store.md "Capture"): a disk hot-plugged at a free SCSI target
// and held there for the launcher's own commands in the appliance
// (pocketvm-capture), the source read-only (QEMU's read-only=on: nothing in
// the appliance can write to it), the new disk writable, until unplugged.
// Unplugging deletes QEMU's nodes, which flushes the new disk's file.
import { FilesError } from '../errors.ts';
import type { ApplianceMachine } from './appliance-machine.ts';
import type { PlugRequest } from './appliance-protocol.ts';
import { type PluggedSource, plugSource, unplugSource } from './source-disk.ts';
import { inspectSource, type SourceFormat } from './source-image.ts';

const MAX_TARGETS = 256;

export async function plugHandler(
  appliance: ApplianceMachine,
  request: PlugRequest,
  used: ReadonlySet<number>,
  held: Map<number, PluggedSource>,
): Promise<{ target: number }> {
  const detected = await inspectSource(request.source);
  const source = { ...detected, format: request.format as SourceFormat };
  const target = Array.from({ length: MAX_TARGETS }, (_, i) => i).find((i) => !used.has(i));
  if (target === undefined) throw new FilesError(`${MAX_TARGETS} sources are open already`, { hint: 'close one: launcher files close NAME' });
  const plugged = await plugSource(appliance.machine.qmp, source, target, request.readOnly).catch((cause: unknown) => {
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new FilesError(`QEMU cannot open ${source.path} as ${source.format}: ${message}`, { cause, details: { reason: 'unreadable' } });
  });
  held.set(target, plugged);
  return { target };
}

export async function unplugHandler(appliance: ApplianceMachine, target: number, held: Map<number, PluggedSource>): Promise<{ target: number }> {
  const plugged = held.get(target);
  if (!plugged) throw new FilesError(`nothing is plugged at target ${target}`);
  await unplugSource(appliance.machine.qmp, plugged);
  held.delete(target);
  return { target };
}
