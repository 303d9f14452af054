import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { encodeWav, parseWav, wavHeader, WavError } from '../../server/audio/wav.js';
import { sine } from '../../server/audio/tone.js';

function chunk(id: string, body: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.write(id, 0, 'latin1');
  head.writeUInt32LE(body.length, 4);
  return Buffer.concat([head, body, body.length & 1 ? Buffer.alloc(1) : Buffer.alloc(0)]);
}

function riff(...chunks: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from('WAVE', 'latin1'), ...chunks]);
  const head = Buffer.alloc(8);
  head.write('RIFF', 0, 'latin1');
  head.writeUInt32LE(body.length, 4);
  return Buffer.concat([head, body]);
}

function fmtPcm(rate: number, channels: number, bits = 16): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(1, 0);
  b.writeUInt16LE(channels, 2);
  b.writeUInt32LE(rate, 4);
  b.writeUInt32LE((rate * channels * bits) / 8, 8);
  b.writeUInt16LE((channels * bits) / 8, 12);
  b.writeUInt16LE(bits, 14);
  return b;
}

function le16(samples: Int16Array): Buffer {
  const b = Buffer.alloc(samples.length * 2);
  samples.forEach((s, i) => b.writeInt16LE(s, 2 * i));
  return b;
}

describe('WAV', () => {
  it('round-trips mono and stereo at any rate', () => {
    for (const [rate, channels] of [
      [8000, 1],
      [16000, 1],
      [44100, 2],
      [48000, 2],
    ] as const) {
      const mono = sine(440, rate, 50);
      const samples = channels === 1 ? mono : Int16Array.from({ length: 2 * mono.length }, (_, i) => (i & 1 ? -mono[i >> 1]! : mono[i >> 1]!));
      const wav = encodeWav(samples, rate, channels);
      assert.equal(wav.length, 44 + samples.length * 2);
      const parsed = parseWav(wav);
      assert.equal(parsed.sampleRate, rate);
      assert.equal(parsed.channels, channels);
      assert.deepEqual(parsed.samples, samples);
    }
  });

  it('writes the canonical 44-byte PCM header', () => {
    const h = wavHeader({ sampleRate: 16000, channels: 2, dataBytes: 6400 });
    assert.equal(h.length, 44);
    assert.equal(h.toString('latin1', 0, 4), 'RIFF');
    assert.equal(h.readUInt32LE(4), 36 + 6400);
    assert.equal(h.toString('latin1', 8, 16), 'WAVEfmt ');
    assert.equal(h.readUInt16LE(20), 1);
    assert.equal(h.readUInt16LE(22), 2);
    assert.equal(h.readUInt32LE(24), 16000);
    assert.equal(h.readUInt32LE(28), 64000);
    assert.equal(h.readUInt16LE(32), 4);
    assert.equal(h.readUInt16LE(34), 16);
    assert.equal(h.toString('latin1', 36, 40), 'data');
    assert.equal(h.readUInt32LE(40), 6400);
  });

  it('skips LIST, fact and odd-sized chunks around the data', () => {
    const samples = Int16Array.of(1, -2, 3, -4, 32767, -32768);
    const wav = riff(
      chunk('LIST', Buffer.from('INFOISFT\x05\x00\x00\x00Lavf\x00', 'latin1')),
      chunk('junk', Buffer.from([1, 2, 3])), // odd size: one pad byte follows
      chunk('fmt ', fmtPcm(8000, 1)),
      chunk('fact', Buffer.from([6, 0, 0, 0])),
      chunk('data', le16(samples)),
      chunk('LIST', Buffer.from('trailing', 'latin1')),
    );
    const parsed = parseWav(wav);
    assert.equal(parsed.sampleRate, 8000);
    assert.deepEqual(parsed.samples, samples);
  });

  it('reads WAVE_FORMAT_EXTENSIBLE with a PCM sub-format', () => {
    const fmt = Buffer.alloc(40);
    fmtPcm(16000, 1).copy(fmt);
    fmt.writeUInt16LE(0xfffe, 0);
    fmt.writeUInt16LE(22, 16); // cbSize
    fmt.writeUInt16LE(16, 18); // valid bits
    fmt.writeUInt32LE(4, 20); // channel mask: front centre
    fmt.writeUInt16LE(1, 24); // sub-format GUID starts with WAVE_FORMAT_PCM
    const parsed = parseWav(riff(chunk('fmt ', fmt), chunk('data', le16(Int16Array.of(7, 8)))));
    assert.equal(parsed.sampleRate, 16000);
    assert.deepEqual(parsed.samples, Int16Array.of(7, 8));
  });

  it('reads to the end when the data size is unknown (streamed WAV)', () => {
    const samples = sine(440, 8000, 20);
    const wav = Buffer.concat([wavHeader({ sampleRate: 8000, dataBytes: 0xffffffff }), le16(samples)]);
    assert.equal(wav.readUInt32LE(40), 0xffffffff);
    assert.deepEqual(parseWav(wav).samples, samples);
    // A truncated last sample is dropped, not misread.
    assert.equal(parseWav(wav.subarray(0, wav.length - 1)).samples.length, samples.length - 1);
  });

  it('parses from an unaligned view of a larger buffer', () => {
    const wav = encodeWav(Int16Array.of(1000, -1000), 8000);
    const big = Buffer.concat([Buffer.alloc(3), wav]);
    assert.deepEqual(parseWav(big.subarray(3)).samples, Int16Array.of(1000, -1000));
  });

  it('rejects what it cannot play', () => {
    assert.throws(() => parseWav(Buffer.from('not a wav file at all')), WavError);
    assert.throws(() => parseWav(riff(chunk('fmt ', fmtPcm(8000, 1, 8)), chunk('data', Buffer.alloc(4)))), /8-bit/);
    assert.throws(() => parseWav(riff(chunk('data', Buffer.alloc(4)))), WavError);
    assert.throws(() => parseWav(riff(chunk('fmt ', fmtPcm(8000, 1)))), /no data/);
  });
});
