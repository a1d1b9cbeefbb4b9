// The unit tier stays what `npm run test:unit` promises: no guest, no QEMU, no
// launcher process. A test file that starts one of them without the
// integration marker fails here, naming the file and what it starts.
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testFiles, tierOf } from '../../build/test-tiers.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** What a test file does that belongs to the integration tier, and how that reads in its source. */
const STARTS: Array<[string, RegExp]> = [
  ['the launcher (integration harness)', /import \{[^}]*\b(launcher|launcherJson|launcherPath)\b[^}]*\} from '(\.\.\/)+integration\/harness\.ts'/],
  ['QEMU (findQemu)', /\bfindQemu(Img)?\(/],
  ['QEMU (spawned by name)', /(spawn|execa|execFile|execFileSync)\(\s*['"`](qemu-system-[\w-]+|qemu-img|\/usr\/bin\/qemu-[\w-]+)['"`]/],
  ['QEMU (test/vmm/bare-qemu.ts)', /from '(\.\.\/|\.\/)+(vmm\/)?bare-qemu\.ts'/],
  ['QEMU (POCKETVM_QEMU or qemu-system-x86_64)', /POCKETVM_QEMU'\]\s*\?\?\s*'qemu-system/],
  ['a guest (test machine)', /from '(\.\.\/)+integration\/test-machine\.ts'/],
];

function startsOf(source: string): string[] {
  return STARTS.filter(([, pattern]) => pattern.test(source)).map(([what]) => what);
}

describe('test tiers', () => {
  it('no file of the unit tier starts the launcher, QEMU or a guest', () => {
    const unit = testFiles(root, 'unit');
    assert.ok(unit.length > 20, `${unit.length} unit test files`);
    const offenders = unit.flatMap((file) => startsOf(readFileSync(join(root, file), 'utf8')).map((what) => `${file} starts ${what}`));
    assert.deepEqual(offenders, [], 'add `// Test tier: integration (<why>)` to its opening comment');
  });

  it('every test file is in exactly one tier, and test/integration/ is the integration tier', () => {
    const unit = testFiles(root, 'unit');
    const integration = testFiles(root, 'integration');
    assert.equal(unit.filter((file) => integration.includes(file)).length, 0);
    assert.ok(integration.some((file) => file.startsWith('test/integration/')));
    assert.ok(!unit.some((file) => file.startsWith('test/integration/')));
  });

  it('the marker moves a file to the integration tier; a marker without a reason, or far down the file, does not', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pvm-tiers-'));
    try {
      mkdirSync(join(dir, 'test', 'vmm'), { recursive: true });
      const write = (name: string, text: string) => writeFileSync(join(dir, 'test', 'vmm', name), text);
      write('a.test.ts', "// What it checks.\n// Test tier: integration (starts QEMU).\nimport assert from 'node:assert';\n");
      write('b.test.ts', "// Test tier: integration\nimport assert from 'node:assert';\n");
      write('c.test.ts', `${'// filler\n'.repeat(20)}// Test tier: integration (starts QEMU).\n`);
      write('d.test.ts', `import { findQemu } from '../../src/vmm/qemu-binary.ts';\nfindQemu();\n`);
      assert.equal(tierOf(dir, 'test/vmm/a.test.ts'), 'integration');
      assert.equal(tierOf(dir, 'test/vmm/b.test.ts'), 'unit');
      assert.equal(tierOf(dir, 'test/vmm/c.test.ts'), 'unit');
      assert.deepEqual(testFiles(dir, 'integration'), ['test/vmm/a.test.ts']);
      // The detector itself: d starts QEMU and would be named by the first test.
      assert.deepEqual(startsOf(readFileSync(join(dir, 'test', 'vmm', 'd.test.ts'), 'utf8')), ['QEMU (findQemu)']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
