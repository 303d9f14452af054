/**
 * Streaming sample-rate conversion for mono int16 between 8000, 16000 and 48000 Hz, by
 * integer factors (x2, x3, x6 up or down), with linear-phase FIR low-pass filters.
 *
 * Why this shape:
 * - One `Resampler` per stream keeps the last input samples (the FIR's history), so 20 ms
 *   frames processed one after another give exactly the output of processing the whole
 *   signal at once: no clicks at frame boundaries.
 * - x2 / /2 (8k <-> 16k, the taps' common case) use a half-band filter: every other tap is
 *   zero and the centre tap is 1/2, so upsampling copies every other output sample and
 *   computes the rest with 24 folded taps; downsampling computes only the kept outputs.
 *   Passband flat to 3.6 kHz at 8 kHz (0.9 x Nyquist), > 70 dB rejection from 4.4 kHz.
 * - x3, x6 (to/from 48k) use a polyphase Kaiser-windowed sinc, 32 taps per phase, cutoff at
 *   0.92 x the lower Nyquist frequency: flat (+-0.1 dB) to 0.8 x Nyquist (3.2 kHz at 8k,
 *   6.4 kHz at 16k), > 70 dB rejection of anything that would alias from 1.08 x Nyquist.
 *   Upsampling never multiplies the zeros an L-fold upsampler inserts; downsampling only
 *   computes kept outputs and folds the symmetric taps (half the multiplies).
 * - Coefficients are designed once per ratio and shared by all streams; per-stream memory
 *   is the history plus a work buffer grown once.
 *
 * Tip: Opus decodes and encodes at 8/16 kHz natively; prefer that to resampling from 48k.
 */

export type Rate = 8000 | 16000 | 48000;

/** Zeroth-order modified Bessel function of the first kind (for the Kaiser window). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 50; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-12) break;
  }
  return sum;
}

/** Kaiser-windowed sinc low-pass, `n` taps, cutoff `fc` in cycles/sample, unit DC gain. */
export function windowedSinc(n: number, fc: number, beta: number): Float64Array {
  const h = new Float64Array(n);
  const mid = (n - 1) / 2;
  const i0b = besselI0(beta);
  let sum = 0;
  for (let k = 0; k < n; k++) {
    const t = k - mid;
    const sinc = t === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * t) / (Math.PI * t);
    const r = (2 * k) / (n - 1) - 1;
    h[k] = (sinc * besselI0(beta * Math.sqrt(Math.max(0, 1 - r * r)))) / i0b;
    sum += h[k]!;
  }
  for (let k = 0; k < n; k++) h[k] = h[k]! / sum;
  return h;
}

/**
 * Filter sizes. `wideband` (the default): half-band taps per side HB = 24 (N = 4 x HB - 1 =
 * 95 taps at the high rate) and K = 32 taps per phase for x3 / x6, the figures above.
 * `telephony`: HB = 8 (31 taps) and K = 16, a third of the multiplies for audio that is
 * band-limited to 3.4 kHz anyway (G.711 calls, the taps' pipeline): flat to 3.4 kHz at 8k
 * (+-0.1 dB), > 50 dB rejection from 4.6 kHz.
 */
export type Quality = 'wideband' | 'telephony';
const SIZES: Record<Quality, { hb: number; k: number }> = { wideband: { hb: 24, k: 32 }, telephony: { hb: 8, k: 16 } };
const CUTOFF = 0.92;
const BETA = 7.5;

type Kind = 'copy' | 'hbUp' | 'hbDown' | 'polyUp' | 'polyDown';

interface Design {
  /** Coefficients laid out for the kind's inner loop. */
  coeffs: Float64Array;
  /** Input history the inner loop reaches back over. */
  history: number;
  /** Delay in output samples. */
  delay: number;
}

const designs = new Map<string, Design>();

function design(kind: Kind, ratio: number, quality: Quality): Design {
  const { hb: HB, k: K } = SIZES[quality];
  const key = `${kind}${ratio}${quality}`;
  let d = designs.get(key);
  if (d) return d;
  switch (kind) {
    case 'copy':
      d = { coeffs: new Float64Array(0), history: 0, delay: 0 };
      break;
    case 'hbUp':
    case 'hbDown': {
      // Half-band: cutoff at a quarter of the high rate, odd length, centre tap 1/2; the
      // non-zero off-centre taps are g[j] = h[centre +- (2j + 1)].
      const n = 4 * HB - 1;
      const h = windowedSinc(n, 0.25, 8);
      const centre = 2 * HB - 1;
      const g = new Float64Array(HB);
      let sum = 0;
      for (let j = 0; j < HB; j++) sum += g[j] = h[centre + 2 * j + 1]!;
      // Exact unit DC gain with an exact centre tap of 1/2: scale the odd taps to sum 1/4
      // per side. Upsampling doubles them (zero stuffing halves the energy).
      for (let j = 0; j < HB; j++) g[j] = (g[j]! / sum) * (kind === 'hbUp' ? 0.5 : 0.25);
      d =
        kind === 'hbUp'
          ? { coeffs: g, history: 2 * HB - 1, delay: 2 * HB }
          : { coeffs: g, history: n - 1, delay: HB - 0.5 };
      break;
    }
    case 'polyUp': {
      // Phase p uses h[j*L + p], j = 0..K-1, applied to x[i - j]; stored reversed per phase
      // (index K-1-j) and scaled by L, so the inner loop walks both arrays forwards.
      const n = K * ratio;
      const h = windowedSinc(n, (0.5 * CUTOFF) / ratio, BETA);
      const coeffs = new Float64Array(n);
      for (let p = 0; p < ratio; p++) {
        for (let j = 0; j < K; j++) coeffs[p * K + (K - 1 - j)] = ratio * h[j * ratio + p]!;
      }
      d = { coeffs, history: K - 1, delay: (n - 1) / 2 };
      break;
    }
    case 'polyDown': {
      // Symmetric taps: only the first half is kept, each multiplies a pair of samples.
      const n = K * ratio;
      const h = windowedSinc(n, (0.5 * CUTOFF) / ratio, BETA);
      d = { coeffs: h.slice(0, n / 2), history: n - 1, delay: (n - 1) / 2 / ratio };
      break;
    }
  }
  designs.set(key, d);
  return d;
}

function clamp16(x: number): number {
  const v = Math.round(x);
  return v > 32767 ? 32767 : v < -32768 ? -32768 : v;
}

/** Stateful mono int16 resampler for one stream. */
export class Resampler {
  readonly inRate: Rate;
  readonly outRate: Rate;
  /** Filter delay in output samples (linear phase: the same at every frequency). */
  readonly delay: number;
  private readonly kind: Kind;
  private readonly ratio: number;
  private readonly coeffs: Float64Array;
  private readonly history: number;
  private readonly hb: number;
  private readonly k: number;
  /** [history | current input], as floats. */
  private work: Float64Array;
  /** Downsampling: inputs still to consume before the next output (0..ratio-1). */
  private skip = 0;

  constructor(inRate: Rate, outRate: Rate, readonly quality: Quality = 'wideband') {
    this.inRate = inRate;
    this.outRate = outRate;
    const up = outRate > inRate;
    const ratio = up ? outRate / inRate : inRate / outRate;
    if (![1, 2, 3, 6].includes(ratio)) throw new RangeError(`unsupported conversion ${inRate} -> ${outRate}`);
    this.ratio = ratio;
    this.kind = ratio === 1 ? 'copy' : ratio === 2 ? (up ? 'hbUp' : 'hbDown') : up ? 'polyUp' : 'polyDown';
    const d = design(this.kind, ratio, quality);
    this.hb = SIZES[quality].hb;
    this.k = SIZES[quality].k;
    this.coeffs = d.coeffs;
    this.history = d.history;
    this.delay = d.delay;
    this.work = new Float64Array(this.history + 960);
  }

  /** Number of output samples the next `process` of `inputLength` samples will produce. */
  outputLength(inputLength: number): number {
    if (this.kind === 'copy') return inputLength;
    if (this.kind === 'hbUp' || this.kind === 'polyUp') return inputLength * this.ratio;
    // One output each time `skip` wraps: after skip inputs, then every ratio inputs.
    return inputLength > this.skip ? Math.floor((inputLength - this.skip - 1) / this.ratio) + 1 : 0;
  }

  /** Forget the history (e.g. after a gap in the stream). */
  reset(): void {
    this.work.fill(0);
    this.skip = 0;
  }

  /**
   * Convert one chunk. Any length works; a 20 ms frame gives 20 ms out (160 <-> 320 <-> 960
   * samples). `out` must hold `outputLength(input.length)` samples (a longer one is used
   * from its start); without it one is allocated.
   */
  process(input: Int16Array, out?: Int16Array): Int16Array {
    const outLen = this.outputLength(input.length);
    let dst: Int16Array;
    if (out === undefined) dst = new Int16Array(outLen);
    else if (out.length >= outLen) dst = out;
    else throw new RangeError(`out holds ${out.length} samples, need ${outLen}`);
    this.processInto(input, dst, 0);
    return dst.length === outLen ? dst : dst.subarray(0, outLen);
  }

  /**
   * The same, written into `dst` from `at` (it must hold outputLength(input.length) more):
   * no view or array is made, for a stream converted 20 ms at a time. Returns the count.
   */
  processInto(input: Int16Array, dst: Int16Array, at: number): number {
    const n = input.length;
    const outLen = this.outputLength(n);
    if (dst.length - at < outLen) throw new RangeError(`out holds ${dst.length - at} samples, need ${outLen}`);
    if (this.kind === 'copy') {
      dst.set(input, at);
      return n;
    }
    const hist = this.history;
    if (this.work.length < hist + n) {
      const grown = new Float64Array(hist + n);
      grown.set(this.work.subarray(0, hist));
      this.work = grown;
    }
    const w = this.work;
    for (let i = 0; i < n; i++) w[hist + i] = input[i]!;
    const c = this.coeffs;
    const r = this.ratio;
    const HB = this.hb;
    const K = this.k;

    switch (this.kind) {
      case 'hbUp': {
        // Input i is w[i + 2HB - 1]; emit x[a] and the half-way sample after it, a = i - HB.
        for (let i = 0, o = at; i < n; i++, o += 2) {
          const a = i + HB - 1;
          let acc = 0;
          for (let j = 0; j < HB; j++) acc += c[j]! * (w[a - j]! + w[a + 1 + j]!);
          dst[o] = w[a]!;
          dst[o + 1] = clamp16(acc);
        }
        break;
      }
      case 'hbDown': {
        // Output centred on w[i + 2HB - 1], reaching w[i] .. w[i + 4HB - 2].
        let o = at;
        for (let i = this.skip; i < n; i += 2) {
          const a = i + 2 * HB - 1;
          let acc = 0.5 * w[a]!;
          for (let j = 0; j < HB; j++) acc += c[j]! * (w[a - 2 * j - 1]! + w[a + 2 * j + 1]!);
          dst[o++] = clamp16(acc);
        }
        break;
      }
      case 'polyUp': {
        // Input i is w[i + K - 1]; phase p's taps reach back to w[i].
        let o = at;
        for (let i = 0; i < n; i++) {
          for (let p = 0, cp = 0; p < r; p++, cp += K) {
            let acc = 0;
            for (let q = 0; q < K; q++) acc += c[cp + q]! * w[i + q]!;
            dst[o++] = clamp16(acc);
          }
        }
        break;
      }
      case 'polyDown': {
        // Window w[i .. i + N - 1], newest last; symmetric taps fold the two ends together.
        const last = hist;
        const half = c.length;
        let o = at;
        for (let i = this.skip; i < n; i += r) {
          let acc = 0;
          for (let k = 0; k < half; k++) acc += c[k]! * (w[i + k]! + w[i + last - k]!);
          dst[o++] = clamp16(acc);
        }
        break;
      }
    }
    if (this.kind === 'hbDown' || this.kind === 'polyDown') this.skip = (this.skip - (n % r) + r) % r;
    // Keep the newest `hist` inputs as the next chunk's history.
    w.copyWithin(0, n, n + hist);
    return outLen;
  }
}

/** One-shot conversion of a whole buffer (tests, files); streams should keep a Resampler. */
export function resample(input: Int16Array, inRate: Rate, outRate: Rate, quality: Quality = 'wideband'): Int16Array {
  return new Resampler(inRate, outRate, quality).process(input);
}
