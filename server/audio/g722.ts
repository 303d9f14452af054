/**
 * G.722 wideband codec, 64 kbit/s mode (ITU-T Rec. G.722, 09/2012, mode 1): sub-band ADPCM.
 *
 * 16 kHz 16-bit linear PCM is split by a 24-tap quadrature mirror filter pair (§3.1 / §4.4)
 * into two 8 kHz sub-bands; the lower band is coded with 6-bit ADPCM (§3.2-3.6 and the
 * block descriptions of §6: SUBTRA, QUANTL, INVQAL, LOGSCL, SCALEL), the higher band with
 * 2-bit ADPCM (QUANTH, INVQAH, LOGSCH, SCALEH), both with the same pole-zero predictor
 * (blocks RECONS, PARREC, UPPOL1/2, UPZERO, DELAYA, FILTEP, FILTEZ, PREDIC). Each pair of
 * input samples becomes one byte `IH(2 bits) << 6 | IL(6 bits)`; 20 ms = 320 samples =
 * 160 bytes. (RTP quirk, RFC 3551 §4.5.2: G.722's RTP clock rate is 8000 although it samples
 * at 16000, so the RTP timestamp advances 160 per 20 ms.)
 *
 * Arithmetic follows the standard's fixed-point description (16-bit saturating, arithmetic
 * shifts), so the bitstream interoperates with other implementations. Scaling convention:
 * int16 in, 15-bit sub-band signals (QMF sum >> 14), int16 out (QMF sum >> 11), the usual
 * one for 16-bit PCM interfaces.
 */

/** Half of the symmetric 24-tap QMF coefficients (§3.1, scaled by 2^13): h0, h2, ..., h22. */
const QMF_EVEN = Int32Array.of(3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11);
/** h1, h3, ..., h23 = QMF_EVEN reversed (the filter is symmetric: h(i) = h(23 - i)). */
const QMF_ODD = Int32Array.from(QMF_EVEN).reverse();

/** Lower-band 60-level quantizer decision levels (x DETL >> 12), intervals 1..29. */
const Q6 = Int32Array.of(
  0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
  1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919,
);
/** 6-bit codes of quantizer interval 1..30, for negative and positive differences. */
const ILN = Int32Array.of(
  0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
  10, 9, 8, 7, 6, 5, 4,
);
const ILP = Int32Array.of(
  0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
  38, 37, 36, 35, 34, 33, 32,
);
/** 6-bit inverse quantizer output levels, by code (the decoder's output in mode 1). */
const QM6 = Int32Array.of(
  -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192,
  -10232, -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168,
  -2776, -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512,
  12280, 11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168,
  2776, 2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
);
/**
 * 4-bit inverse quantizer (embedded code: the top 4 bits of IL). The predictor and
 * scale factor adapt on these in every mode, so encoder and decoder stay in step whatever
 * bits a network might drop.
 */
const QM4 = Int32Array.of(
  0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
  1200, 0,
);
/** Lower-band log scale factor multipliers (LOGSCL) and the 4-bit code -> index map. */
const WL = Int32Array.of(-60, -30, 58, 172, 334, 538, 1198, 3042);
const RL42 = Int32Array.of(0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0);
/** Inverse log table 2^(i/32) x 2048 used by SCALEL/SCALEH. */
const ILB = Int32Array.of(
  2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774,
  2834, 2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838,
  3922, 4008,
);
/** Higher band: 2-bit quantizer codes, inverse quantizer, log scale multipliers. */
const IHN = Int32Array.of(0, 1, 0);
const IHP = Int32Array.of(0, 3, 2);
const QM2 = Int32Array.of(-7408, -1616, 7408, 1616);
const WH = Int32Array.of(0, -214, 798);
const RH2 = Int32Array.of(2, 1, 2, 1);
/** QUANTH's single decision level (x DETH >> 12). */
const Q2 = 564;

function sat16(x: number): number {
  return x > 32767 ? 32767 : x < -32768 ? -32768 : x;
}

/** Adaptive state of one sub-band (shared by encoder and decoder: they must stay in step). */
class SubBand {
  /** Signal estimate (PREDIC output). */
  s = 0;
  /** Zero-section part of the estimate (FILTEZ). */
  sz = 0;
  /** Log scale factor (NBL / NBH) and the linear scale factor (DETL / DETH). */
  nb = 0;
  det: number;
  /** Pole coefficients and their history of reconstructed / partially reconstructed signal. */
  a1 = 0;
  a2 = 0;
  r1 = 0;
  r2 = 0;
  p1 = 0;
  p2 = 0;
  /** Zero-section coefficients b[1..6] and quantized differences d[1..6] (index 0 unused). */
  readonly b = new Int32Array(7);
  readonly d = new Int32Array(7);

  constructor(
    private readonly initialDet: number,
    /** Upper limit of the log scale factor (18432 low band, 22528 high band). */
    private readonly nbMax: number,
    /** SCALEL uses 8 - (nb >> 11), SCALEH 10 - (nb >> 11). */
    private readonly scaleShift: number,
  ) {
    this.det = initialDet;
  }

  reset(): void {
    this.s = this.sz = this.nb = 0;
    this.a1 = this.a2 = this.r1 = this.r2 = this.p1 = this.p2 = 0;
    this.b.fill(0);
    this.d.fill(0);
    this.det = this.initialDet;
  }

  /** LOGSCL/LOGSCH (leaky log-domain adaptation) then SCALEL/SCALEH (back to linear). */
  adaptScale(w: number): void {
    let nb = ((this.nb * 127) >> 7) + w;
    if (nb < 0) nb = 0;
    else if (nb > this.nbMax) nb = this.nbMax;
    this.nb = nb;
    const mant = ILB[(nb >> 6) & 31]!;
    const shift = this.scaleShift - (nb >> 11);
    this.det = (shift < 0 ? mant << -shift : mant >> shift) << 2;
  }

  /** Predictor update with quantized difference `dq` (the common block 4 of §6). */
  adaptPredictor(dq: number): void {
    const d = this.d;
    const b = this.b;
    // RECONS and PARREC.
    const r = sat16(this.s + dq);
    const p = sat16(this.sz + dq);
    const n0 = p < 0;
    const same1 = n0 === this.p1 < 0;
    const same2 = n0 === this.p2 < 0;
    // UPPOL2: second pole, leaky, kept within +-12288 (stability triangle).
    const a1x4 = sat16(this.a1 * 4);
    let wd = same1 ? -a1x4 : a1x4;
    if (wd > 32767) wd = 32767;
    let a2 = (wd >> 7) + (same2 ? 128 : -128) + ((this.a2 * 32512) >> 15);
    if (a2 > 12288) a2 = 12288;
    else if (a2 < -12288) a2 = -12288;
    // UPPOL1: first pole, limited to +-(15360 - a2).
    let a1 = sat16((same1 ? 192 : -192) + ((this.a1 * 32640) >> 15));
    const lim = sat16(15360 - a2);
    if (a1 > lim) a1 = lim;
    else if (a1 < -lim) a1 = -lim;
    // UPZERO: sign-sign update of the six zeros, leaky; no step when dq is zero.
    const step = dq === 0 ? 0 : 128;
    const dn = dq < 0;
    for (let i = 1; i <= 6; i++) {
      const g = d[i]! < 0 === dn ? step : -step;
      b[i] = sat16(g + ((b[i]! * 32640) >> 15));
    }
    // DELAYA.
    for (let i = 6; i > 1; i--) d[i] = d[i - 1]!;
    d[1] = dq;
    this.r2 = this.r1;
    this.r1 = r;
    this.p2 = this.p1;
    this.p1 = p;
    this.a1 = a1;
    this.a2 = a2;
    // FILTEP (poles), FILTEZ (zeros), PREDIC.
    const sp = sat16(((a1 * sat16(r + r)) >> 15) + ((a2 * sat16(this.r2 + this.r2)) >> 15));
    let sz = 0;
    for (let i = 6; i >= 1; i--) sz += (b[i]! * sat16(d[i]! + d[i]!)) >> 15;
    this.sz = sz = sat16(sz);
    this.s = sat16(sp + sz);
  }
}

function lowBand(): SubBand {
  return new SubBand(32, 18432, 8);
}
function highBand(): SubBand {
  return new SubBand(8, 22528, 10);
}

/** Stateful G.722 encoder for one stream: 16 kHz int16 in, one byte per 2 samples out. */
export class G722Encoder {
  private readonly low = lowBand();
  private readonly high = highBand();
  /**
   * Transmit QMF delay line (24 input samples) as a ring written twice, at pos and pos + 24,
   * so the newest 24 samples are always contiguous at [pos, pos + 24), oldest first.
   */
  private readonly x = new Int32Array(48);
  private pos = 0;

  reset(): void {
    this.low.reset();
    this.high.reset();
    this.x.fill(0);
    this.pos = 0;
  }

  /**
   * Encode `pcm` (even length, e.g. 320 samples for 20 ms) into `pcm.length / 2` bytes.
   * With `out` given (a Buffer works) nothing is allocated.
   */
  encode(pcm: Int16Array, out?: Uint8Array): Uint8Array {
    const n = pcm.length;
    if (n & 1) throw new RangeError('G.722 encodes sample pairs: pass an even number of samples');
    const bytes = n >> 1;
    const dst = out === undefined ? new Uint8Array(bytes) : out.length === bytes ? out : out.subarray(0, bytes);
    if (dst.length < bytes) throw new RangeError(`out holds ${dst.length} bytes, need ${bytes}`);
    const x = this.x;
    const low = this.low;
    const high = this.high;
    let pos = this.pos;
    for (let k = 0, j = 0; k < bytes; k++, j += 2) {
      // Transmit QMF (§3.1): shift in two samples; x[pos + 23] is the newest.
      pos = pos === 22 ? 0 : pos + 2;
      const s0 = pcm[j]!;
      const s1 = pcm[j + 1]!;
      x[pos + 22] = x[pos - 2 < 0 ? 46 : pos - 2] = s0;
      x[pos + 23] = x[pos - 1 < 0 ? 47 : pos - 1] = s1;
      let xa = 0;
      let xb = 0;
      for (let i = 0, e = pos + 23; i < 12; i++, e -= 2) {
        xa += QMF_EVEN[i]! * x[e]!;
        xb += QMF_ODD[i]! * x[e - 1]!;
      }
      const xl = (xa + xb) >> 14;
      const xh = (xa - xb) >> 14;

      // Lower band: SUBTRA, QUANTL (binary search over the 29 decision levels).
      const el = sat16(xl - low.s);
      const wdl = el >= 0 ? el : -(el + 1);
      const detl = low.det;
      let lo = 1;
      let hi = 30;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (wdl < (Q6[mid]! * detl) >> 12) hi = mid;
        else lo = mid + 1;
      }
      const il = el < 0 ? ILN[lo]! : ILP[lo]!;
      // INVQAL on the 4-bit embedded code, then scale and predictor adaptation.
      const il4 = il >> 2;
      const dl = (detl * QM4[il4]!) >> 15;
      low.adaptScale(WL[RL42[il4]!]!);
      low.adaptPredictor(dl);

      // Higher band: SUBTRA, QUANTH, INVQAH.
      const eh = sat16(xh - high.s);
      const wdh = eh >= 0 ? eh : -(eh + 1);
      const deth = high.det;
      const mih = wdh >= (Q2 * deth) >> 12 ? 2 : 1;
      const ih = eh < 0 ? IHN[mih]! : IHP[mih]!;
      const dh = (deth * QM2[ih]!) >> 15;
      high.adaptScale(WH[RH2[ih]!]!);
      high.adaptPredictor(dh);

      dst[k] = (ih << 6) | il;
    }
    this.pos = pos;
    return dst;
  }
}

/** Stateful G.722 decoder for one stream: one byte in, two 16 kHz int16 samples out. */
export class G722Decoder {
  private readonly low = lowBand();
  private readonly high = highBand();
  /**
   * Receive QMF delay lines: sums xs = rl + rh and differences xd = rl - rh, 12 each, as
   * rings written twice (at pos and pos + 12) so the newest 12 are contiguous at
   * [pos, pos + 12), newest last.
   */
  private readonly xs = new Int32Array(24);
  private readonly xd = new Int32Array(24);
  private pos = 0;

  reset(): void {
    this.low.reset();
    this.high.reset();
    this.xs.fill(0);
    this.xd.fill(0);
    this.pos = 0;
  }

  /** Decode `data` into `2 * data.length` samples (320 for a 20 ms, 160-byte payload). */
  decode(data: Uint8Array, out?: Int16Array): Int16Array {
    const n = data.length;
    const samples = n * 2;
    const dst = out === undefined ? new Int16Array(samples) : out.length === samples ? out : out.subarray(0, samples);
    if (dst.length < samples) throw new RangeError(`out holds ${dst.length} samples, need ${samples}`);
    const low = this.low;
    const high = this.high;
    const xs = this.xs;
    const xd = this.xd;
    let pos = this.pos;
    for (let k = 0; k < n; k++) {
      const code = data[k]!;
      const il = code & 0x3f;
      const ih = code >> 6;

      // Lower band: INVQBL with all 6 bits for the output, LIMIT to 15 bits.
      const detl = low.det;
      let rl = low.s + ((detl * QM6[il]!) >> 15);
      if (rl > 16383) rl = 16383;
      else if (rl < -16384) rl = -16384;
      // Adaptation uses the 4-bit code exactly as the encoder did.
      const il4 = il >> 2;
      const dl = (detl * QM4[il4]!) >> 15;
      low.adaptScale(WL[RL42[il4]!]!);
      low.adaptPredictor(dl);

      // Higher band: INVQAH, RECONS, LIMIT.
      const dh = (high.det * QM2[ih]!) >> 15;
      let rh = high.s + dh;
      if (rh > 16383) rh = 16383;
      else if (rh < -16384) rh = -16384;
      high.adaptScale(WH[RH2[ih]!]!);
      high.adaptPredictor(dh);

      // Receive QMF (§4.4): the even output sample filters the differences with h(2i), the
      // odd one the sums with h(2i+1); newest values at index 11.
      pos = pos === 11 ? 0 : pos + 1;
      const newest = pos + 11;
      const mirror = pos === 0 ? 23 : pos - 1;
      xs[newest] = xs[mirror] = rl + rh;
      xd[newest] = xd[mirror] = rl - rh;
      let even = 0;
      let odd = 0;
      for (let i = 0; i < 12; i++) {
        even += QMF_EVEN[i]! * xd[newest - i]!;
        odd += QMF_ODD[i]! * xs[newest - i]!;
      }
      dst[2 * k] = sat16(even >> 11);
      dst[2 * k + 1] = sat16(odd >> 11);
    }
    this.pos = pos;
    return dst;
  }
}
