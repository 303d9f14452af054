/**
 * Test tones and tone detection: "audio is checked as audio" (DESIGN.md, How we test). One side
 * of a call sends a tone, the far side must find that tone after G.711/G.722/Opus coding,
 * resampling, jitter and a little silence at the start.
 *
 * Detection uses the Goertzel algorithm (a single DFT term computed by a 2nd-order IIR; see
 * e.g. ITU-T Q.24 receivers): far cheaper than an FFT when only a few frequencies matter.
 * `dominantFrequency` scans the band with an FFT and refines with Goertzel.
 */

/** `ms` milliseconds of a sine at `freq` Hz, peak `amplitude` (default 8000, about -12 dBFS). */
export function sine(freq: number, rate: number, ms: number, amplitude = 8000): Int16Array {
  const n = Math.round((rate * ms) / 1000);
  const out = new Int16Array(n);
  const w = (2 * Math.PI * freq) / rate;
  for (let i = 0; i < n; i++) out[i] = Math.round(amplitude * Math.sin(w * i));
  return out;
}

export interface ToneGeneratorOptions {
  /** Peak amplitude (default 8000). */
  amplitude?: number;
  /** Frame duration in ms (default 20, one RTP packet). */
  frameMs?: number;
}

/**
 * Consecutive frames of one continuous sine (the phase carries over, so frame boundaries
 * are seamless), e.g. a fake microphone for a test call.
 */
export class ToneGenerator {
  readonly samplesPerFrame: number;
  private readonly amplitude: number;
  private readonly step: number;
  /** Phase in cycles, kept in [0, 1) so precision does not degrade on long runs. */
  private phase = 0;

  constructor(
    readonly freq: number,
    readonly rate: number,
    options: ToneGeneratorOptions = {},
  ) {
    this.amplitude = options.amplitude ?? 8000;
    this.samplesPerFrame = Math.round((rate * (options.frameMs ?? 20)) / 1000);
    this.step = freq / rate;
  }

  /** The next frame; fills `out` (any length) when given, else a new array of one frame. */
  next(out?: Int16Array): Int16Array {
    const dst = out ?? new Int16Array(this.samplesPerFrame);
    const a = this.amplitude;
    const step = this.step;
    let ph = this.phase;
    for (let i = 0; i < dst.length; i++) {
      dst[i] = Math.round(a * Math.sin(2 * Math.PI * ph));
      ph += step;
      if (ph >= 1) ph -= 1;
    }
    this.phase = ph;
    return dst;
  }

  reset(): void {
    this.phase = 0;
  }
}

/**
 * Power of the `freq` component of samples[start, end), optionally Hann windowed,
 * normalized so a sine of amplitude A spanning the range gives A^2 / 2 (its mean square).
 */
function goertzel(samples: ArrayLike<number>, start: number, end: number, rate: number, freq: number, hann: boolean): number {
  const n = end - start;
  if (n <= 0) return 0;
  const coeff = 2 * Math.cos((2 * Math.PI * freq) / rate);
  let s1 = 0;
  let s2 = 0;
  let wsum = 0;
  if (hann) {
    // Window computed by a rotating phasor (cos recurrence), no per-sample Math.cos.
    const dw = (2 * Math.PI) / n;
    const cd = Math.cos(dw);
    const sd = Math.sin(dw);
    let c = 1;
    let s = 0;
    for (let i = 0; i < n; i++) {
      const w = 0.5 - 0.5 * c;
      wsum += w;
      const s0 = samples[start + i]! * w + coeff * s1 - s2;
      s2 = s1;
      s1 = s0;
      const c2 = c * cd - s * sd;
      s = s * cd + c * sd;
      c = c2;
    }
  } else {
    wsum = n;
    for (let i = 0; i < n; i++) {
      const s0 = samples[start + i]! + coeff * s1 - s2;
      s2 = s1;
      s1 = s0;
    }
  }
  const mag2 = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  return (2 * mag2) / (wsum * wsum);
}

/**
 * Power of the `freq` Hz component (rectangular window), in mean-square units: a sine of
 * amplitude A over the whole input gives A^2 / 2, the same scale as the signal's mean square.
 */
export function goertzelPower(samples: ArrayLike<number>, rate: number, freq: number): number {
  return goertzel(samples, 0, samples.length, rate, freq, false);
}

/** In-place iterative radix-2 complex FFT (length a power of two). */
function fft(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      let t = re[i]!;
      re[i] = re[j]!;
      re[j] = t;
      t = im[i]!;
      im[i] = im[j]!;
      im[j] = t;
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const ang = (-2 * Math.PI) / len;
    const wr = Math.cos(ang);
    const wi = Math.sin(ang);
    const half = len >> 1;
    for (let i = 0; i < n; i += len) {
      let cr = 1;
      let ci = 0;
      for (let k = 0; k < half; k++) {
        const a = i + k;
        const b = a + half;
        const xr = re[b]! * cr - im[b]! * ci;
        const xi = re[b]! * ci + im[b]! * cr;
        re[b] = re[a]! - xr;
        im[b] = im[a]! - xi;
        re[a] = re[a]! + xr;
        im[a] = im[a]! + xi;
        const t = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = t;
      }
    }
  }
}

export interface FrequencyScan {
  /** Lowest frequency considered, Hz (default 50). */
  min?: number;
  /** Highest frequency considered, Hz (default rate / 2 - 50). */
  max?: number;
  /** Resolution of the answer, Hz (default 1). */
  step?: number;
}

/**
 * The strongest frequency in [min, max]: a Hann-windowed FFT finds the peak bin, then a
 * Goertzel scan at `step` resolution over the neighbouring bins refines it. Returns NaN for
 * silence (all zero) or an empty input.
 */
export function dominantFrequency(samples: ArrayLike<number>, rate: number, scan: FrequencyScan = {}): number {
  const n = samples.length;
  const min = Math.max(0, scan.min ?? 50);
  const max = Math.min(rate / 2, scan.max ?? rate / 2 - 50);
  const step = scan.step ?? 1;
  if (n < 2 || !(max > min)) return Number.NaN;
  let size = 1;
  while (size < n) size <<= 1;
  const re = new Float64Array(size);
  const im = new Float64Array(size);
  let mean = 0;
  for (let i = 0; i < n; i++) mean += samples[i]!;
  mean /= n;
  for (let i = 0; i < n; i++) re[i] = (samples[i]! - mean) * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n));
  fft(re, im);
  const binHz = rate / size;
  const lo = Math.max(1, Math.ceil(min / binHz));
  const hi = Math.min(size / 2, Math.floor(max / binHz));
  let best = -1;
  let bestMag = 0;
  for (let k = lo; k <= hi; k++) {
    const m = re[k]! * re[k]! + im[k]! * im[k]!;
    if (m > bestMag) {
      bestMag = m;
      best = k;
    }
  }
  if (best < 0) return Number.NaN;
  // Refine between the neighbouring bins (the true peak lies within one bin of the max).
  const span = Math.max(binHz, rate / n);
  const from = Math.max(min, best * binHz - span);
  const to = Math.min(max, best * binHz + span);
  let f = best * binHz;
  let p = -1;
  for (let x = from; x <= to + 1e-9; x += step) {
    const q = goertzel(samples, 0, n, rate, x, true);
    if (q > p) {
      p = q;
      f = x;
    }
  }
  return Math.round(f / step) * step;
}

export interface DetectToneOptions {
  /** Share of the active signal's power the tone must hold (default 0.5, i.e. the rest of
   * the band is at least as weak as the tone). */
  minFraction?: number;
  /** Ignore input quieter than this RMS (default 30, about -60 dBFS). */
  minRms?: number;
}

/**
 * Is a tone at `freq` +- `toleranceHz` present? Robust to what a call does to audio:
 * - leading/trailing silence (and anything 30 dB below the loudest 10 ms) is trimmed first;
 * - the power is averaged over blocks of up to 200 ms (Welch), so codec noise, dropped
 *   packets or phase jumps between blocks do not cancel the tone out;
 * - the criterion is relative: the tone must hold at least `minFraction` of the remaining
 *   signal's power (DC removed), so speech, noise or another tone fail it, whatever the level.
 */
export function detectTone(
  samples: Int16Array | ArrayLike<number>,
  rate: number,
  freq: number,
  toleranceHz = 10,
  options: DetectToneOptions = {},
): boolean {
  const minFraction = options.minFraction ?? 0.5;
  const minRms = options.minRms ?? 30;
  const region = activeRegion(samples, rate, minRms);
  if (!region) return false;
  const [start, end] = region;
  const len = end - start;
  const block = Math.min(len, Math.round(rate * 0.2));
  const blocks = Math.floor(len / block);
  // Frequencies to try: every quarter bin across the tolerance band.
  const fStep = Math.max(0.25, rate / block / 4);
  let bestTone = 0;
  for (let f = freq - toleranceHz; f <= freq + toleranceHz + 1e-9; f += fStep) {
    let sum = 0;
    for (let b = 0; b < blocks; b++) sum += goertzel(samples, start + b * block, start + (b + 1) * block, rate, f, true);
    if (sum > bestTone) bestTone = sum;
  }
  bestTone /= blocks;
  // Mean square of the same blocks with each block's DC removed.
  let total = 0;
  for (let b = 0; b < blocks; b++) {
    const s = start + b * block;
    let mean = 0;
    for (let i = 0; i < block; i++) mean += samples[s + i]!;
    mean /= block;
    let acc = 0;
    for (let i = 0; i < block; i++) {
      const d = samples[s + i]! - mean;
      acc += d * d;
    }
    total += acc / block;
  }
  total /= blocks;
  return total > 0 && bestTone >= minFraction * total;
}

/**
 * [start, end) from the first to the last 10 ms frame whose RMS is within 30 dB of the
 * loudest frame and above `minRms`; undefined when nothing is.
 */
function activeRegion(samples: ArrayLike<number>, rate: number, minRms: number): [number, number] | undefined {
  const frame = Math.max(1, Math.round(rate / 100));
  const frames = Math.floor(samples.length / frame);
  if (frames === 0) return undefined;
  const ms = new Float64Array(frames);
  let peak = 0;
  for (let f = 0; f < frames; f++) {
    let acc = 0;
    for (let i = f * frame, e = i + frame; i < e; i++) acc += samples[i]! * samples[i]!;
    ms[f] = acc / frame;
    if (ms[f]! > peak) peak = ms[f]!;
  }
  const threshold = Math.max(minRms * minRms, peak / 1000);
  let first = -1;
  let last = -1;
  for (let f = 0; f < frames; f++) {
    if (ms[f]! >= threshold) {
      if (first < 0) first = f;
      last = f;
    }
  }
  if (first < 0) return undefined;
  return [first * frame, (last + 1) * frame];
}
