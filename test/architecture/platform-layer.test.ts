// "Which OS am I on" has one answer, in src/platform/ (current.ts chooses the
// record of linux.ts, windows.ts or darwin.ts). Everywhere else in src/ asks
// that record a named question; this fails on a `process.platform`, an
// `os.platform()`/`os.type()` or an import of them from node:os outside it.
import assert from 'node:assert/strict';
import { repoRoot, sourceFiles } from './import-graph.ts';
import { osQuestions } from './os-questions.ts';

describe('architecture: one platform layer', () => {
  it('src/ asks which OS it runs on only in src/platform/', () => {
    const outside = sourceFiles(repoRoot, 'src').filter((file) => !file.startsWith('src/platform/'));
    assert.deepEqual(
      outside.flatMap((file) => osQuestions(file)),
      [],
    );
  });

  it('the check sees the question where it is asked (src/platform/current.ts, host-fingerprint.ts)', () => {
    assert.equal(osQuestions('src/platform/current.ts').length, 1);
    assert.equal(osQuestions('src/platform/host-fingerprint.ts').length, 1);
  });
});
