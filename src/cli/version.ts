import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { codeRoot } from '../stick/stick-root.ts';

export const VERSION: string = (JSON.parse(readFileSync(join(codeRoot, 'package.json'), 'utf8')) as { version: string }).version;
