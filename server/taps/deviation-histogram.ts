/**
 * A histogram of frame deviation (how far each tap's 20 ms step strays from 20 ms) in shared
 * memory: each tap worker thread counts into its own block, the main thread sums the blocks
 * when /metrics is scraped. Buckets in ms, cumulative only when read (Prometheus `le`).
 */

/** Upper bounds, ms (+Inf implied). */
export const DEVIATION_BUCKETS_MS: readonly number[] = [0.5, 1, 2, 3, 5, 10, 20, 50];
const N = DEVIATION_BUCKETS_MS.length + 1;

export class DeviationHistogram {
  private readonly a: Float64Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer((N + 2) * 8)) {
    this.a = new Float64Array(buffer);
  }

  observe(ms: number): void {
    const d = ms < 0 ? -ms : ms;
    let i = 0;
    while (i < N - 1 && d > DEVIATION_BUCKETS_MS[i]!) i++;
    this.a[i]!++;
    this.a[N] = this.a[N]! + d;
    this.a[N + 1]!++;
  }

  /** Per-bucket (not cumulative) counts, the sum (ms) and the count. */
  read(): { counts: number[]; sum: number; count: number } {
    return { counts: Array.from(this.a.subarray(0, N)), sum: this.a[N]!, count: this.a[N + 1]! };
  }
}

/** Cumulative Prometheus buckets (seconds) over several blocks. */
export function sumHistograms(blocks: readonly DeviationHistogram[]): { le: number[]; cumulative: number[]; sum: number; count: number } {
  const counts = new Array<number>(N).fill(0);
  let sum = 0;
  let count = 0;
  for (const b of blocks) {
    const r = b.read();
    r.counts.forEach((c, i) => (counts[i] = counts[i]! + c));
    sum += r.sum;
    count += r.count;
  }
  const cumulative: number[] = [];
  let run = 0;
  for (const c of counts) cumulative.push((run += c));
  return { le: [...DEVIATION_BUCKETS_MS.map((ms) => ms / 1000), Infinity], cumulative, sum: sum / 1000, count };
}
