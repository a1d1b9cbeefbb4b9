// What a checkout's launcher asks of the build (build/, never shipped on a
// stick): the guest payload, the preload that makes the host's QEMU not
// dumpable, a whole stick. The launcher declares the shapes it calls here and
// loads build/ by a path computed at run time, so src/ never imports build/
// (the build imports src/: build/launcher-contract.ts holds build/ to these
// shapes at typecheck).
import { join } from 'node:path';
import { codeRoot } from '../stick/stick-root.ts';
import type { ProgressEvent } from './progress.ts';

export interface PayloadBuilder {
  buildPayload(options: { root: string; guest?: string; onProgress?: (event: ProgressEvent) => void }): Promise<unknown>;
}

export interface ImageBuilder {
  buildImage(options: { root: string; guest: string; onProgress?: (event: ProgressEvent) => void }): Promise<unknown>;
}

export interface PreloadBuilder {
  /** Compiles the LD_PRELOAD object for the host's QEMU into .cache/ when missing; its path. */
  ensureCheckoutNoDumpPreload(root: string): string;
}

/** The platforms a checkout can build launchers for (build/stick/executables.ts's EXECUTABLE_PLATFORMS). */
export type StickPlatform = 'linux-x64' | 'win-x64' | 'darwin-x64';

export interface StickBuilder {
  buildStick(options: {
    root: string;
    dir: string;
    platforms?: readonly StickPlatform[];
    onProgress?: (event: ProgressEvent) => void;
  }): Promise<{ files: number }>;
}

/** A module of the checkout's build/ (`payload.ts`, `stick/stick.ts`, …); only a checkout has it. */
export async function importBuild<T>(...path: string[]): Promise<T> {
  return (await import(join(codeRoot, 'build', ...path))) as T;
}
