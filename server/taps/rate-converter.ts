/**
 * Streaming sample-rate conversion between any two rates, for audio a tap server sends
 * (raw at 24 kHz, an mp3 at 44.1 kHz...) on its way into an 8 or 16 kHz call.
 *
 * The integer ratios between 8, 16 and 48 kHz go to server/audio/resample.ts (half-band and
 * polyphase filters tuned for them). Anything else uses a rational polyphase FIR: with
 * L/M = out/in reduced, output j is at input position jM/L; its phase `jM mod L` picks one of
 * L sub-filters of a Kaiser-windowed sinc designed at the L-fold rate, cut off just below the
 * lower of the two Nyquist frequencies, K taps each (so K multiply-adds per output sample).
 * Coefficient tables are built once per (L, M) and shared.
 *
 * One converter per stream: it keeps the last K-1 inputs, so chunks processed one after
 * another give the output of processing the whole signal at once. Output length varies by
 * at most one sample per chunk; `process` appends to an output array the caller provides.
 */
import { Resampler, windowedSinc, type Quality, type Rate } from '../audio/resample.js';

/** Taps per polyphase branch. */
const K = 24;
const CUTOFF = 0.9;
const BETA = 8;
/** Largest L (output phases) accepted: 44.1k, 22.05k, 11.025k, 24k, 32k... all fit. */
const MAX_PHASES = 2048;

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

interface Design {
  L: number;
  M: number;
  /** coeffs[ph * K + k] multiplies x[i0 - k] for an output of phase ph */
  coeffs: Float64Array;
}

const designs = new Map<string, Design>();

function design(L: number, M: number): Design {
  const key = `${L}/${M}`;
  let d = designs.get(key);
  if (d) return d;
  const n = K * L;
  // cutoff in cycles per sample of the L-fold upsampled signal
  const fc = (0.5 * CUTOFF * Math.min(1, L / M)) / L;
  const h = windowedSinc(n, fc, BETA);
  const coeffs = new Float64Array(n);
  for (let ph = 0; ph < L; ph++) {
    // each branch normalised to unit DC gain (no ripple from the branch sums at DC)
    let sum = 0;
    for (let k = 0; k < K; k++) sum += h[ph + k * L]!;
    for (let k = 0; k < K; k++) coeffs[ph * K + k] = sum !== 0 ? h[ph + k * L]! / sum : 0;
  }
  d = { L, M, coeffs };
  designs.set(key, d);
  return d;
}

const FAST: ReadonlySet<number> = new Set([8000, 16000, 48000]);

export function isSupportedRate(rate: number): boolean {
  if (!Number.isInteger(rate) || rate < 4000 || rate > 192_000) return false;
  const g = gcd(rate, 16000);
  const g8 = gcd(rate, 8000);
  return 16000 / g <= MAX_PHASES && 8000 / g8 <= MAX_PHASES;
}

/** Converts one mono int16 stream from `inRate` to `outRate`. */
export class RateConverter {
  private readonly fast: Resampler | null = null;
  private readonly copy: boolean;
  private readonly d: Design | null = null;
  /** [K-1 history | current input] */
  private work = new Float64Array(K - 1 + 1024);
  /** input index (relative to the current chunk) of the next output's newest tap */
  private i0 = 0;
  private ph = 0;

  constructor(
    readonly inRate: number,
    readonly outRate: number,
    /** filter size for the 8/16/48 kHz ratios (resample.ts); the taps' call audio uses telephony */
    quality: Quality = 'wideband',
  ) {
    this.copy = inRate === outRate;
    if (this.copy) return;
    const up = outRate > inRate;
    const ratio = up ? outRate / inRate : inRate / outRate;
    if (FAST.has(inRate) && FAST.has(outRate) && [2, 3, 6].includes(ratio)) {
      this.fast = new Resampler(inRate as Rate, outRate as Rate, quality);
      return;
    }
    if (!isSupportedRate(inRate) || !isSupportedRate(outRate)) throw new RangeError(`cannot convert ${inRate} Hz to ${outRate} Hz`);
    const g = gcd(inRate, outRate);
    this.d = design(outRate / g, inRate / g);
  }

  /** At most this many outputs for `n` inputs (size the output array with it). */
  maxOutput(n: number): number {
    return Math.ceil((n * this.outRate) / this.inRate) + 2;
  }

  /**
   * Convert `input` (any length) and write the outputs to `out` from `at`; returns how many
   * were written. `out` must hold maxOutput(input.length) from `at`.
   */
  process(input: Int16Array, out: Int16Array, at = 0): number {
    const n = input.length;
    if (this.copy) {
      out.set(input, at);
      return n;
    }
    if (this.fast) return this.fast.processInto(input, out, at);
    const d = this.d!;
    const H = K - 1;
    if (this.work.length < H + n) {
      const grown = new Float64Array(H + n);
      grown.set(this.work.subarray(0, H));
      this.work = grown;
    }
    const w = this.work;
    for (let i = 0; i < n; i++) w[H + i] = input[i]!;
    const c = d.coeffs;
    const L = d.L;
    const M = d.M;
    let i0 = this.i0;
    let ph = this.ph;
    let o = at;
    while (i0 < n) {
      // newest tap x[i0] is w[H + i0]; the branch reaches back K - 1 samples
      const base = ph * K;
      const top = H + i0;
      let acc = 0;
      for (let k = 0; k < K; k++) acc += c[base + k]! * w[top - k]!;
      const v = Math.round(acc);
      out[o++] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
      ph += M;
      if (ph >= L) {
        i0 += Math.floor(ph / L);
        ph %= L;
      }
    }
    this.i0 = i0 - n;
    this.ph = ph;
    w.copyWithin(0, n, n + H);
    return o - at;
  }

  reset(): void {
    this.fast?.reset();
    this.work.fill(0);
    this.i0 = 0;
    this.ph = 0;
  }
}
