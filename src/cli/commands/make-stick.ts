// `launcher make-stick DIR`: a complete stick in DIR. In a checkout it runs
// the stick builder (build/stick/stick.ts, like `node build.js stick DIR`);
// from a stick it copies that stick's own launchers, QEMU and payloads.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../../errors.ts';
import { codeRoot, isDevCheckout } from '../../stick/stick-root.ts';
import { importBuild, type StickBuilder, type StickPlatform } from '../checkout-build.ts';
import type { Output } from '../output.ts';
import { jsonOption } from './options.ts';

export function registerMakeStick(program: Command, output: () => Output): void {
  const command = program
    .command('make-stick')
    .description('make a complete stick in DIR: launchers for every platform, QEMU, payload, manifest')
    .argument('<dir>', 'an empty folder (the root of the drive), or a stick to refresh')
    .option('--platform <name...>', 'in a checkout: only these executables (linux-x64, win-x64, darwin-x64)');
  jsonOption(command);
  command.action(async (dir: string, options: { platform?: string[] }) => {
    const out = output();
    const known = ['linux-x64', 'win-x64', 'darwin-x64'];
    const unknown = (options.platform ?? []).filter((p) => !known.includes(p));
    if (unknown.length > 0) throw new UsageError(`unknown platform ${unknown.join(', ')}`, `platforms: ${known.join(', ')}`);
    if (options.platform && !isDevCheckout()) throw new UsageError('--platform only applies in a checkout', 'a stick copies the launchers it has');
    const { progressRenderer } = await import('../progress.ts');
    const target = resolve(dir);
    const progress = progressRenderer(out);
    let files: number;
    try {
      if (isDevCheckout()) {
        // build/ is not shipped on sticks; only a checkout reaches this import.
        const builder = await importBuild<StickBuilder>('stick', 'stick.ts');
        const platforms = options.platform as StickPlatform[] | undefined;
        files = (await builder.buildStick({ root: codeRoot, dir: target, ...(platforms ? { platforms } : {}), onProgress: progress.onProgress })).files;
      } else {
        const { cloneStick } = await import('../../stick/clone-stick.ts');
        files = (await cloneStick({ from: codeRoot, to: target, onProgress: progress.onProgress })).files;
      }
    } finally {
      progress.finish();
    }
    out.data({ stick: target, files });
    out.line(`stick ready at ${target} (${files} files); check it with: launcher verify --stick ${dir}`);
  });
}
