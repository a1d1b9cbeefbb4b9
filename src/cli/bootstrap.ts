// Development-checkout conveniences: build the payload when it is missing and
// keep ./demo-stick in step with it, so `./launcher demo` works on a fresh
// clone with nothing set up. (npm dependencies are the `launcher` shim's job.)
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PayloadError } from '../errors.ts';
import { CHECKSUM_FILE } from '../payload/guest-payload.ts';
import { platformOf } from '../platform/current.ts';
import { initStick } from '../stick/init-stick.ts';
import { stickLayout } from '../stick/layout.ts';
import { codeRoot, isDevCheckout } from '../stick/stick-root.ts';
import { type ImageBuilder, importBuild, type PayloadBuilder, type PreloadBuilder } from './checkout-build.ts';
import type { Output } from './output.ts';
import { progressRenderer } from './progress.ts';
import { VERSION } from './version.ts';

/** Built payloads of this checkout (or of the stick the launcher runs from). */
export const sourcePayloadRoot = join(codeRoot, 'payload');

/**
 * A checkout's runs use the host's QEMU, made not dumpable by a preload that
 * `node build.js test` compiles (src/vmm/qemu-binary.ts). `./launcher demo` on a
 * fresh clone compiles it too (well under a second), so the README's first
 * command is as guarded as the tests. Without gcc-12 it stays missing and the
 * session says so in one line.
 */
async function ensureCheckoutPreload(): Promise<void> {
  if (!platformOf()?.qemuNoDumpPreload || !isDevCheckout()) return;
  try {
    const { ensureCheckoutNoDumpPreload } = await importBuild<PreloadBuilder>('stick', 'no-dump-preload.ts');
    ensureCheckoutNoDumpPreload(codeRoot);
  } catch {
    // No compiler: QEMU runs dumpable (core dumps stay off) and the session's notice says how to fix it.
  }
}

export async function ensurePayloadBuilt(output: Output, guest: string): Promise<void> {
  await ensureCheckoutPreload();
  if (existsSync(join(sourcePayloadRoot, guest, CHECKSUM_FILE))) return;
  if (!isDevCheckout()) {
    throw new PayloadError(`the ${guest} payload is missing from ${sourcePayloadRoot}`, { hint: 'copy a complete stick again' });
  }
  if (existsSync(join(codeRoot, 'images', guest, 'recipe.json'))) {
    // An image guest: its base image from its recipe (docs/images.md), after the payload it boots with.
    await ensurePayloadBuilt(output, 'default');
    output.info(`building the ${guest} guest's base image (first run only) ...`);
    const { buildImage } = await importBuild<ImageBuilder>('image.ts');
    const progress = progressRenderer(output);
    try {
      await buildImage({ root: codeRoot, guest, onProgress: progress.onProgress });
    } finally {
      progress.finish();
    }
    return;
  }
  output.info(`building the ${guest} guest payload from Debian packages (first run only; takes a few minutes) ...`);
  // build/ is not shipped on sticks; only a checkout reaches this import.
  const { buildPayload } = await importBuild<PayloadBuilder>('payload.ts');
  const progress = progressRenderer(output);
  try {
    await buildPayload({ root: codeRoot, guest, onProgress: progress.onProgress });
  } finally {
    progress.finish();
  }
}

async function sums(dir: string): Promise<string | undefined> {
  try {
    return await readFile(join(dir, CHECKSUM_FILE), 'utf8');
  } catch {
    return undefined;
  }
}

/** Creates the stick, or refreshes its payload when the built one changed. */
export async function ensureStickWithPayload(output: Output, stickRoot: string, guest: string): Promise<void> {
  await ensurePayloadBuilt(output, guest);
  const layout = stickLayout(stickRoot);
  const fresh = !existsSync(layout.marker);
  if (!fresh && (await sums(join(layout.payloadRoot, guest))) === (await sums(join(sourcePayloadRoot, guest)))) return;
  output.info(fresh ? `creating a stick at ${stickRoot}` : `updating the ${guest} payload on ${stickRoot}`);
  const progress = progressRenderer(output);
  try {
    await initStick({ root: stickRoot, sourcePayloadRoot, guests: [guest], version: VERSION, onProgress: progress.onProgress });
  } finally {
    progress.finish();
  }
}
