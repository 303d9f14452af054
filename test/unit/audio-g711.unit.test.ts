import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { decodeAlaw, decodeUlaw, encodeAlaw, encodeUlaw } from '../../server/audio/g711.js';
import { detectTone, sine } from '../../server/audio/tone.js';

const ALL_CODES = Uint8Array.from({ length: 256 }, (_, i) => i);

function sha256(a: ArrayBufferView): string {
  return createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');
}

function snrDb(ref: Int16Array, got: Int16Array): number {
  let sig = 0;
  let err = 0;
  for (let i = 0; i < ref.length; i++) {
    sig += ref[i]! * ref[i]!;
    err += (ref[i]! - got[i]!) ** 2;
  }
  return 10 * Math.log10(sig / err);
}

const laws = [
  { name: 'PCMU (mu-law)', encode: encodeUlaw, decode: decodeUlaw },
  { name: 'PCMA (A-law)', encode: encodeAlaw, decode: decodeAlaw },
];

describe('G.711', () => {
  it('decodes every code exactly as ffmpeg and sox do (interop)', () => {
    // SHA-256 of the 256 decoded codes as s16le, produced by `ffmpeg -f mulaw|alaw` and
    // `sox -t ul|al` (both agree).
    assert.equal(sha256(decodeUlaw(ALL_CODES)), '3dab54339e520bb2c924826e3b72a917a2b612e9fd12fc867500f1d983a75827');
    assert.equal(sha256(decodeAlaw(ALL_CODES)), 'e04788d110e58ff8c70c93b8480190d973e3b67876b6119abbaec766cc75c174');
  });

  it('maps silence and full scale to the standard codes', () => {
    assert.deepEqual([...encodeUlaw(Int16Array.of(0, 32767, -32768))], [0xff, 0x80, 0x00]);
    assert.deepEqual([...encodeAlaw(Int16Array.of(0, 32767, -32768))], [0xd5, 0xaa, 0x2a]);
    assert.deepEqual([...decodeUlaw(Uint8Array.of(0xff, 0x80, 0x00))], [0, 32124, -32124]);
    assert.deepEqual([...decodeAlaw(Uint8Array.of(0xd5, 0xaa, 0x2a))], [8, 32256, -32256]);
  });

  for (const law of laws) {
    it(`${law.name}: re-encoding a decoded value gives back the same value`, () => {
      const once = law.decode(ALL_CODES);
      const twice = law.decode(law.encode(once));
      assert.deepEqual(twice, once);
    });

    it(`${law.name}: is monotonic over the whole int16 range`, () => {
      const all = Int16Array.from({ length: 65536 }, (_, i) => i - 32768);
      const back = law.decode(law.encode(all));
      for (let i = 1; i < back.length; i++) assert.ok(back[i]! >= back[i - 1]!, `not monotonic at ${all[i]}`);
    });

    it(`${law.name}: a 1 kHz tone keeps its frequency and ~38 dB SNR`, () => {
      const x = sine(1000, 8000, 500, 8000);
      const y = law.decode(law.encode(x));
      assert.ok(snrDb(x, y) > 33, `SNR ${snrDb(x, y).toFixed(1)} dB`);
      assert.ok(detectTone(y, 8000, 1000, 5));
    });

    it(`${law.name}: writes into the caller's buffers`, () => {
      const x = sine(440, 8000, 20);
      const payload = Buffer.alloc(160);
      assert.equal(law.encode(x, payload), payload);
      const pcm = new Int16Array(160);
      assert.equal(law.decode(payload, pcm), pcm);
      // A larger buffer is used from its start; a smaller one is refused.
      assert.equal(law.decode(payload, new Int16Array(320)).length, 160);
      assert.throws(() => law.encode(x, new Uint8Array(100)), RangeError);
    });
  }
});
