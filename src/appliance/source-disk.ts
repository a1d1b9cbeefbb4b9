// A source hot-plugged into the running appliance: a block node for the file
// (or block device), a format node on it, and a scsi-hd on the appliance's
// virtio-scsi controller at its own target. Read-only sources are opened
// read-only by QEMU itself (read-only=on on both nodes): nothing the guest
// does can write to them.
import type { QmpClient } from '../vmm/qmp-client.ts';
import { SCSI_CONTROLLER_ID } from '../vmm/qemu-args.ts';
import type { SourceImage } from './source-image.ts';

export interface PluggedSource {
  target: number;
  node: string;
  fileNode: string;
  device: string;
}

export async function plugSource(qmp: QmpClient, source: SourceImage, target: number, readOnly: boolean): Promise<PluggedSource> {
  const node = `src${target}`;
  const plugged = { target, node, fileNode: `${node}-file`, device: `${node}-dev` };
  await qmp.execute('blockdev-add', {
    driver: source.blockDevice ? 'host_device' : 'file',
    'node-name': plugged.fileNode,
    filename: source.path,
    'read-only': readOnly,
  });
  try {
    // A writable qcow2 (capture's new disk, customize's overlay) keeps written zeros as zero clusters, not data:
    // capture copies a partition it cannot rebuild (an LVM PV, swap) with busybox's dd, which cannot skip them.
    const zeros = !readOnly && source.format === 'qcow2' ? { 'detect-zeroes': 'on' } : {};
    await qmp.execute('blockdev-add', { driver: source.format, 'node-name': node, file: plugged.fileNode, 'read-only': readOnly, ...zeros });
    try {
      await qmp.execute('device_add', { driver: 'scsi-hd', bus: `${SCSI_CONTROLLER_ID}.0`, 'scsi-id': target, lun: 0, drive: node, id: plugged.device });
    } catch (error) {
      await qmp.execute('blockdev-del', { 'node-name': node }).catch(() => {});
      throw error;
    }
  } catch (error) {
    await qmp.execute('blockdev-del', { 'node-name': plugged.fileNode }).catch(() => {});
    throw error;
  }
  return plugged;
}

/** Unplugs the disk (the guest has let it go: pocketvm-files close) and closes QEMU's nodes, which flushes them. */
export async function unplugSource(qmp: QmpClient, plugged: PluggedSource): Promise<void> {
  const deleted = qmp.watch('DEVICE_DELETED', { predicate: (event) => event.data['device'] === plugged.device });
  try {
    await qmp.execute('device_del', { id: plugged.device });
    await deleted.next({ timeoutMs: 30_000 });
  } finally {
    deleted.close();
  }
  await qmp.execute('blockdev-del', { 'node-name': plugged.node });
  await qmp.execute('blockdev-del', { 'node-name': plugged.fileNode });
}
