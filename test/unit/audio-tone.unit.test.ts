import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { decodeUlaw, encodeUlaw } from '../../server/audio/g711.js';
import { mixMono } from '../../server/audio/mix.js';
import { detectTone, dominantFrequency, goertzelPower, sine, ToneGenerator } from '../../server/audio/tone.js';

/** Deterministic white noise of the given RMS. */
function noise(n: number, rms: number, seed = 7): Int16Array {
  const out = new Int16Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    // Uniform in [-1, 1) has RMS 1/sqrt(3).
    out[i] = Math.round(((s >>> 8) / (1 << 23) - 1) * rms * Math.sqrt(3));
  }
  return out;
}

function concat(...parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe('tone generation', () => {
  it('sine() has the requested length and peak', () => {
    const s = sine(440, 8000, 250, 5000);
    assert.equal(s.length, 2000);
    assert.equal(Math.max(...s), 5000);
    assert.equal(Math.min(...s), -5000);
  });

  it('ToneGenerator frames join into one continuous sine', () => {
    const gen = new ToneGenerator(440, 16000, { amplitude: 8000 });
    assert.equal(gen.samplesPerFrame, 320);
    const frames = Array.from({ length: 50 }, () => gen.next());
    const joined = concat(...frames);
    const ref = sine(440, 16000, 1000, 8000);
    let maxDiff = 0;
    for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(joined[i]! - ref[i]!));
    assert.ok(maxDiff <= 1, `differs by ${maxDiff}`);
    const out = new Int16Array(320);
    assert.equal(gen.next(out), out);
  });
});

describe('tone detection', () => {
  it('goertzelPower gives a full-length sine its mean square, and little elsewhere', () => {
    const s = sine(1000, 8000, 500, 10000);
    const p = goertzelPower(s, 8000, 1000);
    assert.ok(Math.abs(p / 5e7 - 1) < 0.01, `power ${p}`);
    assert.ok(goertzelPower(s, 8000, 1100) < p / 1e4);
  });

  it('dominantFrequency finds the strongest tone to 1 Hz', () => {
    for (const [f, rate] of [
      [440, 8000],
      [1234, 16000],
      [3100, 8000],
      [440, 48000],
    ] as const) {
      assert.ok(Math.abs(dominantFrequency(sine(f, rate, 500), rate) - f) <= 1);
    }
    const both = mixMono(sine(440, 8000, 500, 8000), sine(1000, 8000, 500, 2000));
    assert.ok(Math.abs(dominantFrequency(both, 8000) - 440) <= 1);
    assert.ok(Math.abs(dominantFrequency(both, 8000, { min: 600, max: 2000 }) - 1000) <= 1);
    assert.ok(Number.isNaN(dominantFrequency(new Int16Array(800), 8000)));
  });

  it('detects a 440 Hz tone after silence, through G.711, in noise', () => {
    const tone = sine(440, 8000, 1000, 6000);
    assert.ok(detectTone(tone, 8000, 440, 10));
    const late = concat(new Int16Array(2400), tone);
    assert.ok(detectTone(late, 8000, 440, 10), 'after 300 ms of silence');
    assert.ok(detectTone(decodeUlaw(encodeUlaw(late)), 8000, 440, 10), 'through mu-law');
    assert.ok(detectTone(mixMono(late, noise(late.length, 1300)), 8000, 440, 10), 'with noise 10 dB down');
    // A slightly detuned tone (a sound card's clock) is within tolerance.
    assert.ok(detectTone(sine(446, 8000, 1000), 8000, 440, 10));
  });

  it('survives a phase jump or a short gap in the middle (lost packets)', () => {
    const a = sine(440, 16000, 400);
    const b = sine(440, 16000, 400).subarray(7); // restarts at another phase
    assert.ok(detectTone(concat(a, new Int16Array(320), b), 16000, 440, 10));
  });

  it('does not mistake other sounds for the tone', () => {
    assert.ok(!detectTone(new Int16Array(8000), 8000, 440, 10), 'silence');
    assert.ok(!detectTone(noise(8000, 3000), 8000, 440, 10), 'white noise');
    assert.ok(!detectTone(sine(1000, 8000, 1000), 8000, 440, 10), 'another tone');
    assert.ok(!detectTone(sine(470, 8000, 1000), 8000, 440, 10), 'a tone 30 Hz away');
    // 440 Hz present but a louder 1 kHz tone dominates the band.
    const weak = mixMono(sine(440, 8000, 1000, 3000), sine(1000, 8000, 1000, 6000));
    assert.ok(!detectTone(weak, 8000, 440, 10), 'tone not dominant');
    // Very quiet signal: below the floor.
    assert.ok(!detectTone(sine(440, 8000, 1000, 20), 8000, 440, 10), 'below -60 dBFS');
  });
});
