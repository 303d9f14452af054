import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { decodeUlaw, encodeUlaw } from '../../server/audio/g711.js';
import { downmixStereo } from '../../server/audio/mix.js';
import { OpusDecoder, OpusEncoder, OpusError } from '../../server/audio/opus.js';
import { Resampler } from '../../server/audio/resample.js';
import { detectTone, dominantFrequency, ToneGenerator } from '../../server/audio/tone.js';

/** Encode `seconds` of a tone in 20 ms packets and decode them; returns decoded audio. */
function roundTrip(enc: OpusEncoder, dec: OpusDecoder, freq: number, frames: number): Int16Array {
  const gen = new ToneGenerator(freq, enc.sampleRate, { amplitude: 8000 });
  const parts: Int16Array[] = [];
  for (let i = 0; i < frames; i++) parts.push(dec.decode(enc.encode(gen.next())));
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe('Opus (opusscript wasm)', () => {
  it('round-trips a 440 Hz tone at 48 kHz mono', () => {
    const enc = new OpusEncoder({ sampleRate: 48000, channels: 1 });
    const dec = new OpusDecoder({ sampleRate: 48000, channels: 1 });
    const y = roundTrip(enc, dec, 440, 50);
    assert.equal(y.length, 48000);
    assert.ok(Math.abs(dominantFrequency(y, 48000) - 440) <= 2);
    assert.ok(detectTone(y, 48000, 440, 10));
    enc.destroy();
    dec.destroy();
  });

  it('decodes stereo output and straight to 16 or 8 kHz', () => {
    const enc = new OpusEncoder({ sampleRate: 48000 });
    const stereo = new OpusDecoder({ sampleRate: 48000, channels: 2 });
    const packet = enc.encode(new ToneGenerator(440, 48000).next());
    assert.equal(stereo.decode(packet).length, 1920);
    const y = downmixStereo(roundTrip(enc, stereo, 440, 25));
    assert.ok(detectTone(y, 48000, 440, 10));
    for (const rate of [16000, 8000] as const) {
      const dec = new OpusDecoder({ sampleRate: rate });
      const z = roundTrip(enc, dec, 440, 25);
      assert.equal(z.length, rate / 2);
      assert.ok(detectTone(z, rate, 440, 10), `${rate} Hz`);
      dec.destroy();
    }
    enc.destroy();
    stereo.destroy();
  });

  it('carries a tone through the tap pipeline: opus 48k -> 8k -> PCMU, after silence', () => {
    const enc = new OpusEncoder({ sampleRate: 48000, bitrate: 24000 });
    const dec = new OpusDecoder({ sampleRate: 48000 });
    const down = new Resampler(48000, 8000);
    const gen = new ToneGenerator(440, 48000);
    const pcm = new Int16Array(960);
    const narrow = new Int16Array(160);
    const wire = new Uint8Array(160);
    const received = new Int16Array(160 * 60);
    for (let f = 0; f < 60; f++) {
      const frame = f < 10 ? new Int16Array(960) : gen.next(); // 200 ms of silence first
      dec.decode(enc.encode(frame), pcm);
      down.process(pcm, narrow);
      decodeUlaw(encodeUlaw(narrow, wire), received.subarray(f * 160, (f + 1) * 160));
    }
    assert.ok(detectTone(received, 8000, 440, 10));
    assert.ok(!detectTone(received, 8000, 1000, 10));
    enc.destroy();
    dec.destroy();
  });

  it('writes into caller buffers', () => {
    const enc = new OpusEncoder();
    const dec = new OpusDecoder();
    const packetBuf = Buffer.alloc(1500);
    const packet = enc.encode(new ToneGenerator(440, 48000).next(), packetBuf);
    assert.equal(packet.buffer, packetBuf.buffer);
    const pcm = new Int16Array(dec.maxSamples);
    assert.equal(dec.decode(packet, pcm).length, 960);
    enc.destroy();
    dec.destroy();
  });

  it('stays correct with hundreds of coders alive at once', () => {
    // opusscript's own wrapper breaks past ~160 instances (stale heap views); ours must not.
    const encoders = Array.from({ length: 200 }, () => new OpusEncoder({ complexity: 1 }));
    const decoders = Array.from({ length: 200 }, () => new OpusDecoder({ sampleRate: 16000 }));
    try {
      const y = roundTrip(encoders[0]!, decoders[199]!, 440, 25);
      assert.ok(detectTone(y, 16000, 440, 10));
      const z = roundTrip(encoders[199]!, decoders[0]!, 1000, 25);
      assert.ok(detectTone(z, 16000, 1000, 10));
    } finally {
      for (const c of [...encoders, ...decoders]) c.destroy();
    }
  });

  it('reports corrupt packets and misuse as errors', () => {
    const dec = new OpusDecoder();
    // TOC code 0 (one frame) with more than the 1275 bytes a frame may have.
    const bad = new Uint8Array(1300);
    bad[0] = 0x78;
    assert.throws(() => dec.decode(bad), OpusError);
    assert.throws(() => dec.decode(new Uint8Array(0)), OpusError);
    dec.destroy();
    assert.throws(() => dec.decode(Uint8Array.of(0x78, 0)), /after destroy/);
    const enc = new OpusEncoder();
    assert.throws(() => enc.encode(new Int16Array(1000)), OpusError);
    assert.throws(() => new OpusDecoder({ sampleRate: 44100 as 48000 }), RangeError);
    enc.destroy();
  });
});
