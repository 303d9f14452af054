/**
 * G.711 companding (ITU-T Rec. G.711, 11/1988): PCMU (mu-law, RTP payload type 0) and
 * PCMA (A-law, payload type 8), between 16-bit linear PCM and one byte per sample.
 *
 * Everything is table driven so the per-sample cost is one load:
 * - decoding uses 256-entry Int16 tables;
 * - encoding indexes a table by the sample's top bits. G.711's decision values (its Tables 1
 *   and 2) lie on a 14-bit scale for mu-law and a 13-bit scale for A-law (sign plus 12
 *   magnitude bits), so `s >> 2` (16384 entries) and `s >> 4` (4096 entries) index the
 *   complete code for every int16 without loss.
 *
 * The tables are built once at module load from the segment rules below (kept small and
 * readable since they run 20k times, not per frame). Negative inputs use the one's
 * complement magnitude (`~x`), as the ITU-T G.191 reference does, so x and -1-x share a code.
 */

/** mu-law segment ends are 2^(s+6) - 33 on the 14-bit scale: adding 33 aligns them to powers of 2. */
const ULAW_BIAS = 33;
const ULAW_MAX14 = 0x1fff;

/** Encode one 14-bit signed value (-8192..8191) to a mu-law byte (reference rule). */
function ulawFrom14(x: number): number {
  const negative = x < 0;
  let mag = (negative ? ~x : x) + ULAW_BIAS;
  if (mag > ULAW_MAX14) mag = ULAW_MAX14;
  // Segment = position of the top bit above bit 5 (mag >= 33 always, so >= 0).
  let seg = 0;
  for (let v = mag >> 6; v !== 0; v >>= 1) seg++;
  const mantissa = (mag >> (seg + 1)) & 0x0f;
  const code = (seg << 4) | mantissa;
  // G.711 transmits the code inverted; the sign bit is 1 for positive values.
  return (negative ? 0x7f : 0xff) ^ code;
}

/** Decode one mu-law byte to 16-bit linear (the segment's midpoint, x4 for 16 bits). */
function ulawTo16(byte: number): number {
  const u = ~byte & 0xff;
  const exp = (u >> 4) & 7;
  const mantissa = u & 0x0f;
  const mag = (((mantissa << 3) + 0x84) << exp) - 0x84;
  return u & 0x80 ? -mag : mag;
}

/** Encode one 12-bit magnitude + sign (A-law works on 13 bits) to an A-law byte. */
function alawFrom13(x12: number, negative: boolean): number {
  let ix = x12;
  if (ix > 15) {
    // Segments 1..7: the top bit position gives the exponent, 4 bits of mantissa follow.
    let exp = 1;
    while (ix > 31) {
      ix >>= 1;
      exp++;
    }
    ix = (exp << 4) | (ix - 16);
  }
  if (!negative) ix |= 0x80;
  // G.711 transmits A-law with its even bits inverted.
  return ix ^ 0x55;
}

/** Decode one A-law byte to 16-bit linear (segment midpoint). */
function alawTo16(byte: number): number {
  const ix = byte ^ 0x55;
  const exp = (ix & 0x7f) >> 4;
  let mantissa = ix & 0x0f;
  if (exp > 0) mantissa += 16;
  mantissa = (mantissa << 4) + 8;
  if (exp > 1) mantissa <<= exp - 1;
  return ix & 0x80 ? mantissa : -mantissa;
}

const ULAW_DECODE = new Int16Array(256);
const ALAW_DECODE = new Int16Array(256);
/** mu-law code for each 14-bit input, indexed by `(s >> 2) & 0x3fff`. */
const ULAW_ENCODE = new Uint8Array(1 << 14);
/** A-law code for each 12-bit input, indexed by `(s >> 4) & 0xfff`. */
const ALAW_ENCODE = new Uint8Array(1 << 12);

for (let b = 0; b < 256; b++) {
  ULAW_DECODE[b] = ulawTo16(b);
  ALAW_DECODE[b] = alawTo16(b);
}
for (let i = 0; i < 1 << 14; i++) {
  const x14 = i >= 1 << 13 ? i - (1 << 14) : i;
  ULAW_ENCODE[i] = ulawFrom14(x14);
}
for (let i = 0; i < 1 << 12; i++) {
  const x12 = i >= 1 << 11 ? i - (1 << 12) : i;
  const negative = x12 < 0;
  ALAW_ENCODE[i] = alawFrom13(negative ? ~x12 : x12, negative);
}


function outInt16(dst: Int16Array | undefined, n: number): Int16Array {
  if (dst === undefined) return new Int16Array(n);
  if (dst.length === n) return dst;
  if (dst.length < n) throw new RangeError(`dst holds ${dst.length} samples, need ${n}`);
  return dst.subarray(0, n);
}

function outBytes(dst: Uint8Array | undefined, n: number): Uint8Array {
  if (dst === undefined) return new Uint8Array(n);
  if (dst.length === n) return dst;
  if (dst.length < n) throw new RangeError(`dst holds ${dst.length} bytes, need ${n}`);
  return dst.subarray(0, n);
}

/**
 * mu-law bytes -> linear samples. With `dst` (at least `src.length` long) nothing is
 * allocated when the lengths match; the returned array has exactly `src.length` samples.
 */
export function decodeUlaw(src: Uint8Array, dst?: Int16Array): Int16Array {
  const n = src.length;
  const out = outInt16(dst, n);
  for (let i = 0; i < n; i++) out[i] = ULAW_DECODE[src[i]!]!;
  return out;
}

/** Linear samples -> mu-law bytes (a `Buffer` works as `dst`). */
export function encodeUlaw(src: Int16Array, dst?: Uint8Array): Uint8Array {
  const n = src.length;
  const out = outBytes(dst, n);
  for (let i = 0; i < n; i++) out[i] = ULAW_ENCODE[(src[i]! >> 2) & 0x3fff]!;
  return out;
}

/** A-law bytes -> linear samples. */
export function decodeAlaw(src: Uint8Array, dst?: Int16Array): Int16Array {
  const n = src.length;
  const out = outInt16(dst, n);
  for (let i = 0; i < n; i++) out[i] = ALAW_DECODE[src[i]!]!;
  return out;
}

/** Linear samples -> A-law bytes. */
export function encodeAlaw(src: Int16Array, dst?: Uint8Array): Uint8Array {
  const n = src.length;
  const out = outBytes(dst, n);
  for (let i = 0; i < n; i++) out[i] = ALAW_ENCODE[(src[i]! >> 4) & 0xfff]!;
  return out;
}
