// The appliance's `customize` operation (launcher image customize,
// docs/image-store.md "Customize"): a new qcow2 overlay over the source image
// (made by the launcher in images/incoming/) is hot-plugged READ-WRITE at a
// free SCSI target, the appliance's pocketvm-customize mounts the image's root
// file system (on LVM: its volume group activated on the overlay, deactivated
// after) and, for adapt, its own /boot and /boot/efi under it, applies the
// steps in order, unmounts, and the disk is unplugged (which flushes it). The
// source image is the overlay's backing file, opened read-only by QEMU: it
// stays as it was.
import { execFileSync } from 'node:child_process';
import { basename } from 'node:path';
import { FilesError } from '../errors.ts';
import type { CustomizeRequest, CustomizeResult } from './appliance-protocol.ts';
import type { ApplianceMachine } from './appliance-machine.ts';
import { runInAppliance } from './guest-command.ts';
import { plugSource, unplugSource } from './source-disk.ts';

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/**
 * The steps as pocketvm-customize reads them: one a line, every argument
 * base64, then `end`, then each copied file's bytes raw, in the steps' order
 * (a `copy` line ends with its content's size). The guest's shell reads a line
 * a byte at a time: megabytes of base64 on a line would take it minutes, so the
 * contents come after the lines, taken whole.
 */
export function customizeScript(steps: CustomizeRequest['steps']): Buffer {
  const contents: Buffer[] = [];
  const lines = steps.map((step) => {
    switch (step.kind) {
      case 'hostname':
        return `hostname ${b64(step.hostname)}`;
      case 'user':
        return `user ${b64(step.name)}${step.password === undefined ? '' : ` ${b64(step.password)}`}`;
      case 'key':
        return `key ${b64(step.name)} ${b64(step.key)}`;
      case 'copy': {
        const content = Buffer.from(step.contentBase64, 'base64');
        contents.push(content);
        return `copy ${b64(step.path)} ${content.length}`;
      }
      case 'firstboot':
        return `firstboot ${b64(step.command)}`;
      case 'generalize':
        return 'generalize';
      case 'probe':
      case 'drivers':
        return `${step.kind} ${b64(step.modules.join(' '))}`;
      case 'uuid':
      case 'serial':
      case 'netnames':
      case 'debs':
        return step.kind;
    }
  });
  return Buffer.concat([Buffer.from([...lines, 'end', ''].join('\n')), ...contents]);
}

/** adapt's packages: a tar of the folder, sent after every copied file's bytes; read by pocketvm-customize's `debs` step (the last). */
function debsTar(steps: CustomizeRequest['steps']): Buffer {
  const debs = steps.find((s) => s.kind === 'debs');
  if (!debs) return Buffer.alloc(0);
  if (steps.at(-1) !== debs) throw new FilesError('the packages step must be the last', { details: { reason: 'customize-failed' } });
  return execFileSync('tar', ['-cf', '-', '-C', debs.dir, '.'], { maxBuffer: 256 << 20 });
}

export async function customizeHandler(appliance: ApplianceMachine, request: CustomizeRequest, target: number): Promise<CustomizeResult> {
  const started = performance.now();
  const plugged = await plugSource(appliance.machine.qmp, { path: request.overlay, format: 'qcow2', blockDevice: false }, target, false).catch(
    (cause: unknown) => {
      throw new FilesError(`QEMU cannot open ${request.overlay}: ${cause instanceof Error ? cause.message : String(cause)}`, {
        cause,
        details: { reason: 'unreadable' },
      });
    },
  );
  try {
    const result = await runInAppliance(
      appliance.execs,
      [
        '/usr/bin/pocketvm-customize',
        String(target),
        String(request.rootPartition),
        // '-': no volume, when mounts follow.
        ...(request.rootVolume || request.mounts?.length ? [request.rootVolume ?? '-'] : []),
        ...(request.mounts ?? []).map((m) => `${m.mountpoint}=${m.partition}${m.volume ? `:${m.volume}` : ''}`),
      ],
      Buffer.concat([customizeScript(request.steps), debsTar(request.steps)]),
    );
    if (result.exitCode !== 0)
      throw new FilesError(`${basename(request.overlay)}: ${result.stderr.trim().split('\n').at(-1) || `customizing failed (exit ${result.exitCode})`}`, {
        details: { reason: 'customize-failed', exit: result.exitCode },
      });
    return {
      done: result.stdout
        .split('\n')
        .filter((l) => l.startsWith('step '))
        .map((l) => l.slice(5)),
      ms: Math.round(performance.now() - started),
    };
  } finally {
    await unplugSource(appliance.machine.qmp, plugged).catch(() => {});
  }
}
