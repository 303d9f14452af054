import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { Resampler, resample, type Rate } from '../../server/audio/resample.js';
import { dominantFrequency, goertzelPower, sine } from '../../server/audio/tone.js';

const PAIRS: Array<[Rate, Rate]> = [
  [8000, 16000],
  [16000, 8000],
  [8000, 48000],
  [48000, 8000],
  [16000, 48000],
  [48000, 16000],
];

function meanSquare(a: Int16Array, from = 0): number {
  let s = 0;
  for (let i = from; i < a.length; i++) s += a[i]! * a[i]!;
  return s / (a.length - from);
}

const db = (ratio: number): number => 10 * Math.log10(ratio);

describe('Resampler', () => {
  for (const [from, to] of PAIRS) {
    it(`${from} -> ${to}: keeps a 440 Hz and a 1 kHz tone's frequency and level`, () => {
      for (const f of [440, 1000]) {
        const x = sine(f, from, 1000, 10000);
        const y = resample(x, from, to);
        assert.equal(y.length, to);
        assert.ok(Math.abs(dominantFrequency(y, to) - f) <= 1, `${f} Hz became ${dominantFrequency(y, to)}`);
        // Level within 0.2 dB once the filter has filled (skip 10 ms).
        const gain = db(meanSquare(y, to / 100) / meanSquare(x, from / 100));
        assert.ok(Math.abs(gain) < 0.2, `gain ${gain.toFixed(2)} dB`);
      }
    });

    it(`${from} -> ${to}: 20 ms frames give exactly the one-shot output (no boundary clicks)`, () => {
      const x = sine(440, from, 500, 12000);
      const whole = resample(x, from, to);
      const r = new Resampler(from, to);
      const frameIn = from / 50;
      const out = new Int16Array(to / 50);
      const framed = new Int16Array(whole.length);
      for (let i = 0, o = 0; i < x.length; i += frameIn, o += out.length) {
        framed.set(r.process(x.subarray(i, i + frameIn), out), o);
      }
      assert.deepEqual(framed, whole);
    });
  }

  it('handles chunk sizes that are not a multiple of the ratio', () => {
    const x = sine(700, 48000, 200);
    const whole = resample(x, 48000, 8000);
    const r = new Resampler(48000, 8000);
    const parts: number[] = [];
    for (let i = 0, k = 0; i < x.length; k++) {
      const chunk = x.subarray(i, i + [7, 13, 1, 5, 960][k % 5]!);
      const expected = r.outputLength(chunk.length);
      const out = r.process(chunk);
      assert.equal(out.length, expected, 'outputLength predicts process()');
      parts.push(...out);
      i += chunk.length;
    }
    assert.deepEqual(Int16Array.from(parts), whole);
  });

  it('filters what would alias when downsampling (> 60 dB down)', () => {
    // Each tone lies above the output's Nyquist frequency and would fold into the band.
    for (const [from, to, f] of [
      [48000, 8000, 5000],
      [48000, 16000, 9500],
      [16000, 8000, 4600],
      [48000, 8000, 12000],
    ] as Array<[Rate, Rate, number]>) {
      const x = sine(f, from, 500, 16000);
      const y = resample(x, from, to);
      const attenuation = db(meanSquare(x) / Math.max(1e-9, meanSquare(y, to / 50)));
      assert.ok(attenuation > 60, `${from}->${to} ${f} Hz only ${attenuation.toFixed(1)} dB down`);
    }
  });

  it('does not create images when upsampling (> 60 dB down)', () => {
    for (const [from, to] of [
      [8000, 16000],
      [8000, 48000],
      [16000, 48000],
    ] as Array<[Rate, Rate]>) {
      const f = 1000;
      const y = resample(sine(f, from, 500, 16000), from, to);
      const tone = goertzelPower(y.subarray(to / 50), to, f);
      const image = goertzelPower(y.subarray(to / 50), to, from - f);
      assert.ok(db(tone / image) > 60, `${from}->${to} image only ${db(tone / image).toFixed(1)} dB down`);
    }
  });

  it('passes the telephone band flat (300-3200 Hz at 8 kHz, within 0.2 dB)', () => {
    for (const f of [300, 1000, 2000, 3000, 3200]) {
      const x = sine(f, 48000, 300, 10000);
      const y = resample(x, 48000, 8000);
      const gain = db(meanSquare(y, 80) / meanSquare(x, 480));
      assert.ok(Math.abs(gain) < 0.2, `${f} Hz: ${gain.toFixed(2)} dB`);
    }
  });

  it('saturates instead of wrapping on full-scale input', () => {
    // Square waves overshoot after low-pass filtering (Gibbs); the output must clip.
    const x = new Int16Array(1600).map((_, i) => ((i >> 4) & 1 ? 32767 : -32768));
    const y = resample(x, 8000, 48000);
    let jumps = 0;
    for (let i = 1; i < y.length; i++) if (Math.abs(y[i]! - y[i - 1]!) > 40000) jumps++;
    assert.equal(jumps, 0);
  });

  it('copies through at equal rates and rejects other ratios', () => {
    const x = sine(440, 16000, 20);
    assert.deepEqual(resample(x, 16000, 16000), x);
    assert.throws(() => new Resampler(44100 as Rate, 16000), RangeError);
  });

  it('reports its delay and is linear phase', () => {
    const r = new Resampler(8000, 16000);
    assert.ok(r.delay > 0 && r.delay < 64);
    // An impulse comes out symmetric around the delay.
    const impulse = new Int16Array(200);
    impulse[10] = 20000;
    const y = r.process(impulse);
    // Input 10 is output 20; samples i and j with i + j = 2 x (20 + delay) mirror each other.
    const twice = 2 * (20 + r.delay);
    assert.ok(Number.isInteger(twice));
    for (let hi = Math.ceil(twice / 2); hi < twice / 2 + 20; hi++) {
      assert.ok(Math.abs(y[hi]! - y[twice - hi]!) <= 1, `asymmetric at ${hi}`);
    }
    assert.ok(y[Math.floor(twice / 2)]! > 5000);
  });
});
