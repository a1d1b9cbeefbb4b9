// What every benchmark in bench/ shares: its command-line options (--runs N,
// --json), narration on stderr (silent with --json), and the median.

export interface BenchOptions {
  runs: number;
  json: boolean;
  /** Progress for a person, on stderr; nothing with --json. */
  say: (text: string) => void;
}

export function benchOptions(defaultRuns: number, minimumRuns = 1, argv: string[] = process.argv): BenchOptions {
  const runsAt = argv.indexOf('--runs');
  const requested = runsAt >= 0 ? Number(argv[runsAt + 1]) : defaultRuns;
  const runs = Math.max(minimumRuns, Number.isInteger(requested) && requested > 0 ? requested : defaultRuns);
  const json = argv.includes('--json');
  return { runs, json, say: (text) => void (json || process.stderr.write(`${text}\n`)) };
}

/** A positive whole number given as `name N` (e.g. --mib 256), else `fallback`. */
export function numberOption(name: string, fallback: number, argv: string[] = process.argv): number {
  const at = argv.indexOf(name);
  const value = at >= 0 ? Number(argv[at + 1]) : fallback;
  return Number.isInteger(value) && value > 0 ? value : fallback;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
