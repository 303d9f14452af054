/**
 * Mixing and channel layout for the audio taps (mono = one side, mixed = both sides summed,
 * stereo = one side per channel). Int16 in, int16 out, no allocation when `out` is given.
 */

/**
 * out[i] = a[i] + b[i], saturated to the int16 range (clipping instead of the wrap-around a
 * plain Int16Array store would do). Mixes `min(a.length, b.length)` samples; `out` may be `a`
 * or `b` (in-place). Returns the written part of `out`.
 */
export function mixMono(a: Int16Array, b: Int16Array, out?: Int16Array): Int16Array {
  const n = a.length < b.length ? a.length : b.length;
  const dst = out === undefined ? new Int16Array(n) : out.length === n ? out : out.subarray(0, n);
  if (dst.length < n) throw new RangeError(`out holds ${dst.length} samples, need ${n}`);
  for (let i = 0; i < n; i++) {
    const s = a[i]! + b[i]!;
    dst[i] = s > 32767 ? 32767 : s < -32768 ? -32768 : s;
  }
  return dst;
}

/**
 * Interleave two mono channels into L R L R ... (`2 * min(left.length, right.length)`
 * samples), the layout of 16-bit stereo WAV and of L16 stereo (RFC 3551 §4.5.11).
 */
export function interleaveStereo(left: Int16Array, right: Int16Array, out?: Int16Array): Int16Array {
  const n = left.length < right.length ? left.length : right.length;
  const len = 2 * n;
  const dst = out === undefined ? new Int16Array(len) : out.length === len ? out : out.subarray(0, len);
  if (dst.length < len) throw new RangeError(`out holds ${dst.length} samples, need ${len}`);
  for (let i = 0, j = 0; i < n; i++, j += 2) {
    dst[j] = left[i]!;
    dst[j + 1] = right[i]!;
  }
  return dst;
}

/** The inverse of interleaveStereo: L R L R ... -> left, right. */
export function deinterleaveStereo(
  stereo: Int16Array,
  left?: Int16Array,
  right?: Int16Array,
): { left: Int16Array; right: Int16Array } {
  const n = stereo.length >> 1;
  const l = left === undefined ? new Int16Array(n) : left.subarray(0, n);
  const r = right === undefined ? new Int16Array(n) : right.subarray(0, n);
  if (l.length < n || r.length < n) throw new RangeError(`channels need ${n} samples`);
  for (let i = 0, j = 0; i < n; i++, j += 2) {
    l[i] = stereo[j]!;
    r[i] = stereo[j + 1]!;
  }
  return { left: l, right: r };
}

/**
 * Stereo -> mono by averaging the channels (Opus decodes to stereo for stereo streams).
 * Averaging rather than summing cannot overflow, so no clipping is needed.
 */
export function downmixStereo(stereo: Int16Array, out?: Int16Array): Int16Array {
  const n = stereo.length >> 1;
  const dst = out === undefined ? new Int16Array(n) : out.length === n ? out : out.subarray(0, n);
  if (dst.length < n) throw new RangeError(`out holds ${dst.length} samples, need ${n}`);
  for (let i = 0, j = 0; i < n; i++, j += 2) dst[i] = (stereo[j]! + stereo[j + 1]!) >> 1;
  return dst;
}
