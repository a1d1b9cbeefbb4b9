// The launcher in a checkout loads build/payload.ts, build/stick/no-dump-preload.ts
// and build/stick/stick.ts by a path computed at run time
// (src/cli/checkout-build.ts), so src/ does not import build/. These types
// hold those modules to the shapes the launcher calls: a change that breaks
// the launcher fails the typecheck here.
import type { ImageBuilder, PayloadBuilder, PreloadBuilder, StickBuilder, StickPlatform } from '../src/cli/checkout-build.ts';
import type { ExecutablePlatform } from './stick/executables.ts';

type Holds<Module extends Shape, Shape> = Module;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Is<T extends true> = T;

export type LauncherContract = [
  Holds<typeof import('./payload.ts'), PayloadBuilder>,
  Holds<typeof import('./image.ts'), ImageBuilder>,
  Holds<typeof import('./stick/no-dump-preload.ts'), PreloadBuilder>,
  Holds<typeof import('./stick/stick.ts'), StickBuilder>,
  Is<Same<ExecutablePlatform, StickPlatform>>,
];
