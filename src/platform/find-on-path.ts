import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The executable `name` from PATH, or undefined. */
export function findOnPath(name: string, path: string = process.env['PATH'] ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
