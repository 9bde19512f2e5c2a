/** One measured line of a benchmark; the first line of a suite marked `baseline` is what the others divide by. */
export interface BenchResult {
  name: string;
  /** Operations per second (higher is better). */
  opsPerSec: number;
  baseline?: boolean;
  /** Optional latency figures in milliseconds. */
  p50Ms?: number;
  p99Ms?: number;
  note?: string;
}

export interface BenchSuite {
  name: string;
  description: string;
  run(): Promise<BenchResult[]>;
}

/** Table of results with each one's ratio to the suite's baseline measured in the same run. */
export function formatSuite(suite: BenchSuite, results: BenchResult[]): string {
  const base = results.find((r) => r.baseline) ?? results[0];
  const lines = [`## ${suite.name}: ${suite.description}`];
  lines.push(`${'case'.padEnd(44)} ${'ops/s'.padStart(12)} ${'vs baseline'.padStart(12)}  latency`);
  for (const r of results) {
    const ratio = base && base.opsPerSec > 0 ? (r.opsPerSec / base.opsPerSec).toFixed(2) : '-';
    const lat = r.p50Ms !== undefined ? `p50 ${r.p50Ms.toFixed(3)} ms, p99 ${r.p99Ms?.toFixed(3)} ms` : '';
    const name = `${r.name}${r === base ? ' (baseline)' : ''}`;
    lines.push(
      `${name.padEnd(44)} ${(r.opsPerSec < 100 ? r.opsPerSec.toFixed(2) : Math.round(r.opsPerSec).toLocaleString('en-US')).padStart(12)} ${`${ratio}x`.padStart(12)}  ${lat}${r.note ? ` ${r.note}` : ''}`,
    );
  }
  return lines.join('\n');
}
