// `launcher init-stick DIR`: make a new stick that boots on its own.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { Output } from '../output.ts';
import { VERSION } from '../version.ts';
import { jsonOption } from './options.ts';

export function registerInitStick(program: Command, output: () => Output): void {
  const command = program
    .command('init-stick')
    .description('create the stick layout in DIR and put the built payload on it')
    .argument('<dir>', 'an empty folder, or an existing stick to refresh')
    .option('--guest <name...>', 'guests to put on the stick', ['default']);
  jsonOption(command);
  command.action(async (dir: string, options: { guest: string[] }) => {
    const out = output();
    const [{ initStick }, { ensurePayloadBuilt, sourcePayloadRoot }, { progressRenderer }] = await Promise.all([
      import('../../stick/init-stick.ts'),
      import('../bootstrap.ts'),
      import('../progress.ts'),
    ]);
    const root = resolve(dir);
    for (const guest of options.guest) await ensurePayloadBuilt(out, guest);
    const progress = progressRenderer(out);
    try {
      await initStick({ root, sourcePayloadRoot, guests: options.guest, version: VERSION, onProgress: progress.onProgress });
    } finally {
      progress.finish();
    }
    out.data({ stick: root, guests: options.guest });
    out.line(`stick ready at ${root} with ${options.guest.join(', ')}; boot it with: launcher run --stick ${dir}`);
  });
}
