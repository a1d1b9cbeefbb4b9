// The two tiers of the test suite, chosen in one place.
//
// - unit: in-process tests that need nothing but Node and the npm packages —
//   no guest, no QEMU, no launcher process. `npm run test:unit` runs its files
//   in parallel worker processes, under a minute: the tier to run after every edit.
// - integration: everything that boots the payload (test/integration/), starts
//   QEMU or qemu-img, runs the launcher as a process, or tortures real processes
//   in a crash loop. A file outside test/integration/ joins this tier with a line
//   `// Test tier: integration (<why>)` among its first lines, so the reason
//   sits beside the test. test/build/test-tiers.test.ts checks that no file of
//   the unit tier starts QEMU or the launcher.
//
// `npm test` runs the unit tier first, then the integration tier.
import { globSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export type TestTier = 'unit' | 'integration';

export const TEST_TIERS: readonly TestTier[] = ['unit', 'integration'];

/** The marker a test file outside test/integration/ carries to join the integration tier. */
export const INTEGRATION_MARKER = /^\/\/ Test tier: integration \(.+\)\.?$/m;

/** How many leading lines may hold the marker (it belongs with the file's opening comment). */
const MARKER_LINES = 12;

export function tierOf(root: string, file: string): TestTier {
  if (file.startsWith('test/integration/')) return 'integration';
  const head = readFileSync(join(root, file), 'utf8').split('\n', MARKER_LINES).join('\n');
  return INTEGRATION_MARKER.test(head) ? 'integration' : 'unit';
}

/** Every test file (relative to root, sorted) of one tier. */
export function testFiles(root: string, tier: TestTier): string[] {
  return globSync('test/**/*.test.ts', { cwd: root })
    .map((file) => file.split('\\').join('/'))
    .filter((file) => tierOf(root, file) === tier)
    .sort();
}
