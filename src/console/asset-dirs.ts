// Where the console page's files are: the page's own (assets/) and noVNC's
// ES modules (npm @novnc/novnc, core/ and vendor/), served as they are. In a
// checkout they are read from the sources and node_modules; a stick made by
// `make-stick` carries both under .pocketvm/console/ (build/stick/stick.ts).
import { join } from 'node:path';
import { codeRoot, packaged } from '../runtime/self.ts';

export interface ConsoleAssetDirs {
  page: string;
  /** Holds core/ and vendor/ of @novnc/novnc. */
  novnc: string;
}

export function consoleAssetDirs(root: string = codeRoot, executable: boolean = packaged): ConsoleAssetDirs {
  if (executable) return { page: join(root, '.pocketvm', 'console', 'page'), novnc: join(root, '.pocketvm', 'console', 'novnc') };
  return { page: join(root, 'src', 'console', 'assets'), novnc: join(root, 'node_modules', '@novnc', 'novnc') };
}
