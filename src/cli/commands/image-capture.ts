// `launcher image capture SOURCE` (docs/image-store.md, "Capture"): a system
// copied file by file into a new image through the helper appliance, boot
// checked, then catalogued (src/images/image-capture.ts). Progress on stderr.
import type { Command } from 'commander';
import { captureImage } from '../../images/image-capture.ts';
import { openImageStore } from '../../images/image-store.ts';
import type { Output } from '../output.ts';
import { appliance } from './files.ts';
import { jsonOption, stickOption } from './options.ts';

const mib = (bytes: number) => `${(bytes / (1 << 20)).toFixed(1)} MiB`;

export function registerImageCapture(image: Command, output: () => Output): void {
  jsonOption(stickOption(image.command('capture')))
    .description('capture a system (a catalog image, an image file, a block device or a folder tree) file by file into a new image, boot checked')
    .argument('<source>', 'a catalog image, an image file, a block device, or a folder holding a system')
    .option('--name <name>', 'its name in the catalog (default: from the source)')
    .option('--smaller', "shrink each file system to what is used plus headroom (default: the source partitions' sizes)")
    .action(async (source: string, options: { stick?: string; name?: string; smaller?: boolean }) => {
      const out = output();
      const started = performance.now();
      const app = (await appliance(out, options.stick, true))!;
      const store = await openImageStore(app.layout);
      let shown = '';
      const captured = await captureImage(
        app.layout,
        store,
        app.address,
        source,
        { smaller: options.smaller === true, ...(options.name === undefined ? {} : { name: options.name }) },
        {
          step: (message) => out.info(message),
          progress: (partition, copied, total) => {
            if (out.json) return;
            const percent = total > 0 ? Math.floor((copied / total) * 10) * 10 : 100;
            const line = `  partition ${partition || 1}: ${mib(copied)} of ${mib(total)} (${percent}%)`;
            if (process.stderr.isTTY) process.stderr.write(`\r${line}`);
            else if (`${partition}/${percent}` !== shown) out.info(line);
            shown = `${partition}/${percent}`;
          },
        },
      ).finally(() => store.catalog.close());
      if (process.stderr.isTTY && !out.json) process.stderr.write('\n');
      out.data({ ...captured, seconds: (performance.now() - started) / 1000 });
      out.line(
        `${captured.name}: captured from ${captured.capturedFrom}, ${mib(captured.virtualBytes)} virtual (source ${mib(captured.sourceVirtualBytes)}), ${mib(captured.allocatedBytes)} on the stick, sha256 ${captured.sha256.slice(0, 16)}…`,
      );
      out.line(`  boot check: ${captured.firmware}, kernel started in ${(captured.bootCheck.ms / 1000).toFixed(1)} s`);
      for (const uuid of captured.fstabMissing) out.line(`  warning: the fstab names UUID=${uuid}, which no file system of the new image has`);
    });
}
