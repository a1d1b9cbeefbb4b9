import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bakedVersion } from '../runtime/self.ts';
import { codeRoot } from '../stick/stick-root.ts';

// The executable has its version baked in at build time (no package.json on a stick).
export const VERSION: string = bakedVersion ?? (JSON.parse(readFileSync(join(codeRoot, 'package.json'), 'utf8')) as { version: string }).version;
