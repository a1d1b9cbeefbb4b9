// The integration tier's reporter (build/steps.ts): mocha's spec output, then
// each test file's wall-clock time, longest first, so that a CI log shows
// where the tier's time goes (the tier has a budget: .ci/run's limit) without
// adding up the per-test figures by hand, which leave out the files' before
// hooks, where most boots, builds and fixtures are.
import Mocha from 'mocha';

export default class SpecWithFileTimes extends Mocha.reporters.Spec {
  constructor(runner: Mocha.Runner, options?: Mocha.MochaOptions) {
    super(runner, options);
    const started = new Map<Mocha.Suite, number>();
    const spent = new Map<string, number>();
    const runStarted = performance.now();
    // A file's top-level describe blocks, from their first hook to their last.
    runner.on('suite', (suite) => {
      if (suite.file && suite.parent?.root) started.set(suite, performance.now());
    });
    runner.on('suite end', (suite) => {
      const at = started.get(suite);
      if (at === undefined || !suite.file) return;
      const file = suite.file.startsWith(`${process.cwd()}/`) ? suite.file.slice(process.cwd().length + 1) : suite.file;
      spent.set(file, (spent.get(file) ?? 0) + performance.now() - at);
    });
    runner.once('end', () => {
      const rows = [...spent].sort((a, b) => b[1] - a[1]);
      const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`.padStart(9);
      const lines = rows.map(([file, ms]) => `  ${seconds(ms)}  ${file}`);
      lines.push(`  ${seconds(performance.now() - runStarted)}  the whole tier (${rows.length} files)`);
      process.stdout.write(`\n  wall-clock time per test file, longest first:\n${lines.join('\n')}\n\n`);
    });
  }
}
