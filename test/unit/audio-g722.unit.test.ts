import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { G722Decoder, G722Encoder } from '../../server/audio/g722.js';
import { dominantFrequency, sine } from '../../server/audio/tone.js';

function sha256(a: ArrayBufferView): string {
  return createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');
}

/**
 * A deterministic integer-only test signal (no Math.sin, so identical on every platform):
 * triangle waves of several pitches and levels, full-scale noise, clipping. 32768 samples.
 */
function torture(n: number): Int16Array {
  const s = new Int16Array(n);
  let seed = 12345;
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const noise = (seed >>> 16) - 32768;
    const seg = (i >> 12) % 8;
    const period = 8 + seg * 13;
    const tri = Math.abs(((i % period) * 2 * 4096) / period - 4096) * 2 - 4096;
    const v = seg === 3 ? noise : seg === 5 ? (noise >> 6) + tri : seg === 7 ? tri * 8 : (tri * (seg + 1)) / 4;
    s[i] = Math.max(-32768, Math.min(32767, Math.round(v)));
  }
  return s;
}

/** Best SNR over delays 0..maxDelay of `got` against `ref` (codec delay alignment). */
function alignedSnr(ref: Int16Array, got: Int16Array, maxDelay: number, skip: number): { snr: number; delay: number } {
  let best = { snr: -Infinity, delay: 0 };
  for (let d = 0; d <= maxDelay; d++) {
    let sig = 0;
    let err = 0;
    for (let i = skip; i + d < got.length; i++) {
      sig += ref[i]! * ref[i]!;
      err += (ref[i]! - got[i + d]!) ** 2;
    }
    const snr = 10 * Math.log10(sig / err);
    if (snr > best.snr) best = { snr, delay: d };
  }
  return best;
}

describe('G.722 (64 kbit/s)', () => {
  it('produces the same bitstream and decoded audio as ffmpeg (interop)', () => {
    // Reference hashes: `ffmpeg -f s16le -ar 16000 -ac 1 -i in.raw -c:a g722 -f g722 out.g722`
    // and `ffmpeg -f g722 -i out.g722 -f s16le out.raw` on this signal.
    const pcm = torture(32768);
    const bits = new G722Encoder().encode(pcm);
    assert.equal(bits.length, 16384);
    assert.equal(sha256(bits), 'a790306a2730ba6f35223900683d5187fdea795ded271d1944a07edb17b9912d');
    const decoded = new G722Decoder().decode(bits);
    assert.equal(sha256(decoded), '784153a836d6dc619493de4c1684c5643bb457ca45b4aad783a89a3a3c12bc23');
  });

  it('round-trips a 1 kHz sine with its frequency and > 20 dB SNR after delay alignment', () => {
    const x = sine(1000, 16000, 1000, 10000);
    const y = new G722Decoder().decode(new G722Encoder().encode(x));
    assert.equal(y.length, x.length);
    assert.ok(Math.abs(dominantFrequency(y, 16000) - 1000) <= 2);
    const { snr } = alignedSnr(x, y, 64, 1600);
    assert.ok(snr > 20, `SNR ${snr.toFixed(1)} dB`);
  });

  it('delays broadband audio by the two QMFs, 22 samples, without distorting it', () => {
    // White noise at -18 dBFS: aligned reconstruction is clearly best at one delay only.
    const x = new Int16Array(16000);
    let seed = 1;
    for (let i = 0; i < x.length; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      x[i] = ((seed >>> 16) - 32768) >> 3;
    }
    const y = new G722Decoder().decode(new G722Encoder().encode(x));
    const { snr, delay } = alignedSnr(x, y, 64, 1000);
    assert.equal(delay, 22);
    assert.ok(snr > 10, `SNR ${snr.toFixed(1)} dB`);
  });

  it('carries the upper band too: a 6 kHz tone survives', () => {
    const x = sine(6000, 16000, 500, 8000);
    const y = new G722Decoder().decode(new G722Encoder().encode(x));
    assert.ok(Math.abs(dominantFrequency(y.subarray(800), 16000) - 6000) <= 3);
  });

  it('is stateful per stream: 20 ms frames give the same bytes and audio as one call', () => {
    const x = torture(16000);
    const whole = new G722Encoder().encode(x);
    const enc = new G722Encoder();
    const framed = new Uint8Array(whole.length);
    const payload = Buffer.alloc(160);
    for (let i = 0; i < x.length; i += 320) framed.set(enc.encode(x.subarray(i, i + 320), payload), i / 2);
    assert.deepEqual(framed, whole);

    const dec = new G722Decoder();
    const out = new Int16Array(320);
    const audio = new Int16Array(x.length);
    for (let i = 0; i < whole.length; i += 160) audio.set(dec.decode(whole.subarray(i, i + 160), out), i * 2);
    assert.deepEqual(audio, new G722Decoder().decode(whole));
  });

  it('reset() starts a fresh stream', () => {
    const x = sine(440, 16000, 100);
    const enc = new G722Encoder();
    const first = Uint8Array.from(enc.encode(x));
    enc.encode(torture(1000));
    enc.reset();
    assert.deepEqual(enc.encode(x), first);
  });

  it('refuses odd sample counts (G.722 codes sample pairs)', () => {
    assert.throws(() => new G722Encoder().encode(new Int16Array(3)), RangeError);
  });
});
