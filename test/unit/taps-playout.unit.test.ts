/**
 * The taps' playout path without a call: the queue paces whatever arrives into exact 20 ms
 * frames (every sample once, in order, whatever the message sizes), converts rates, decodes
 * mp3 / ogg (Vorbis, Opus) a slice at a time, reaches marks after their audio, empties at
 * once on clear and refuses audio beyond its cap.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { detectTone } from '../../server/audio/tone.js';
import { encodeWav } from '../../server/audio/wav.js';
import { projectRoot } from '../../server/paths.js';
import { cutField } from '../../server/taps/dialects/audio-stream.js';
import { contentTypeRate } from '../../server/taps/dialects/wsbridge.js';
import { oggPackets } from '../../server/taps/coded-audio.js';
import { PlayoutQueue } from '../../server/taps/playout-queue.js';
import { RateConverter } from '../../server/taps/rate-converter.js';

const fixture = (name: string): Buffer => fs.readFileSync(path.join(projectRoot, 'test', 'fixtures', 'taps', name));

function le(samples: Int16Array): Buffer {
  const b = Buffer.alloc(samples.length * 2);
  for (let i = 0; i < samples.length; i++) b.writeInt16LE(samples[i]!, i * 2);
  return b;
}

function ramp(n: number, from = 0): Int16Array {
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = ((from + i) % 60000) - 30000;
  return out;
}

/** Pull frames until `total` samples came out (or `max` frames), concatenated. */
async function drain(q: PlayoutQueue, frameSize: number, max = 100_000): Promise<{ pcm: Int16Array; frames: number; partial: number }> {
  const chunks: Int16Array[] = [];
  let frames = 0;
  let partial = 0;
  let idle = 0;
  while (frames < max && idle < 2000) {
    const f = new Int16Array(frameSize);
    const got = q.pull(f);
    if (got === 0) {
      if (q.empty) break;
      idle++;
      await new Promise((r) => setTimeout(r, 1));
      continue;
    }
    if (got < frameSize) partial++;
    chunks.push(f.subarray(0, got));
    frames++;
  }
  const pcm = new Int16Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    pcm.set(c, o);
    o += c.length;
  }
  return { pcm, frames, partial };
}

test('30 s sent at once plays as 1500 frames of 20 ms: every sample once, in order', async () => {
  const q = new PlayoutQueue({ rate: 8000 });
  const audio = ramp(8000 * 30);
  assert.ok(q.enqueueL16(le(audio), 8000));
  assert.equal(Math.round(q.queuedMs), 30_000);
  const { pcm, frames, partial } = await drain(q, 160);
  assert.equal(frames, 1500);
  assert.equal(partial, 0);
  assert.deepEqual(pcm, audio);
  assert.ok(q.empty);
});

test('odd message sizes and an odd byte offset join seamlessly', async () => {
  const q = new PlayoutQueue({ rate: 16000 });
  const audio = ramp(16000);
  const bytes = le(audio);
  // sizes 1..999 samples, each message a view at an odd offset of a bigger buffer
  let off = 0;
  for (let k = 1; off < bytes.length; k = (k * 7) % 997 || 1) {
    const n = Math.min(bytes.length - off, k * 2);
    const holder = Buffer.alloc(n + 1);
    bytes.copy(holder, 1, off, off + n);
    q.enqueueL16(holder.subarray(1), 16000);
    off += n;
  }
  const { pcm } = await drain(q, 320);
  assert.deepEqual(pcm, audio);
});

test('rates are converted while pulling: 24 kHz and 44.1 kHz tones come out at 8 kHz', async () => {
  for (const rate of [24000, 44100, 48000, 16000, 22050]) {
    const q = new PlayoutQueue({ rate: 8000 });
    const n = rate; // 1 s
    const s = new Int16Array(n);
    for (let i = 0; i < n; i++) s[i] = Math.round(8000 * Math.sin((2 * Math.PI * 1000 * i) / rate));
    q.enqueuePcm(s, rate);
    const { pcm } = await drain(q, 160);
    assert.ok(Math.abs(pcm.length - 8000) <= 2, `${rate}: ${pcm.length} samples for 1 s`);
    assert.ok(detectTone(pcm.subarray(200), 8000, 1000, 5), `${rate}: 1000 Hz kept`);
  }
});

test('RateConverter: chunked output equals one-shot output (any rate pair)', () => {
  for (const [a, b] of [[24000, 16000], [44100, 8000], [22050, 16000], [8000, 48000]] as const) {
    const input = new Int16Array(a);
    for (let i = 0; i < a; i++) input[i] = Math.round(5000 * Math.sin(i / 7) + 3000 * Math.sin(i / 3.3));
    const one = new RateConverter(a, b);
    const whole = new Int16Array(one.maxOutput(a));
    const nWhole = one.process(input, whole, 0);
    const chunked = new RateConverter(a, b);
    const parts = new Int16Array(chunked.maxOutput(a) + 64);
    let w = 0;
    for (let i = 0; i < a; ) {
      const k = Math.min(a - i, 1 + ((i * 13) % 777));
      w += chunked.process(input.subarray(i, i + k), parts, w);
      i += k;
    }
    assert.equal(w, nWhole);
    assert.deepEqual(parts.subarray(0, w), whole.subarray(0, nWhole));
  }
});

test('marks are reached after the audio before them; clear returns the pending ones', async () => {
  const q = new PlayoutQueue({ rate: 8000 });
  q.enqueueL16(le(ramp(800)), 8000); // 100 ms = 5 frames
  q.mark('a');
  q.enqueueL16(le(ramp(400)), 8000); // 50 ms
  q.mark('b');
  const f = new Int16Array(160);
  const seen: string[][] = [];
  for (let i = 0; i < 8; i++) {
    q.pull(f);
    seen.push(q.takeReached());
  }
  assert.deepEqual(seen.slice(0, 4), [[], [], [], [], ]);
  assert.deepEqual(seen[4], ['a'], 'a after the 5th frame');
  assert.deepEqual(seen[7], ['b'], 'b with the frame holding the end of the 2nd clip');
  q.enqueueL16(le(ramp(8000)), 8000);
  q.mark('c');
  q.mark('d');
  q.pull(f);
  assert.deepEqual(q.clear().sort(), ['c', 'd']);
  assert.equal(q.pull(f), 0, 'nothing left after clear');
  assert.ok(q.empty);
});

test('the cap: audio beyond maxQueuedMs is refused, nothing queued is lost', async () => {
  const q = new PlayoutQueue({ rate: 8000, maxQueuedMs: 2000 });
  assert.ok(q.enqueueL16(le(ramp(8000)), 8000));
  assert.ok(!q.enqueueL16(le(ramp(9000)), 8000), '1 s + 1.125 s > 2 s');
  assert.ok(q.enqueueL16(le(ramp(8000)), 8000));
  assert.ok(q.droppedMs > 1000);
  const { pcm } = await drain(q, 160);
  assert.equal(pcm.length, 16000);
});

test('wav, mp3, ogg/vorbis and ogg/opus decode in slices to the right tone', async () => {
  const q = new PlayoutQueue({ rate: 8000 });
  const wav = encodeWav(ramp(100), 8000);
  assert.ok(wav.length > 44);
  for (const [file, type, freq] of [['tone-600-44k.mp3', 'mp3', 600], ['tone-700-22k-vorbis.ogg', 'ogg', 700], ['tone-800-48k-opus.ogg', 'ogg', 800]] as const) {
    assert.ok(q.enqueueCoded(type, fixture(file)));
    const { pcm } = await drain(q, 160);
    assert.ok(pcm.length > 7000 && pcm.length < 9200, `${file}: ${pcm.length} samples for 1 s`);
    assert.ok(detectTone(pcm, 8000, freq, 10), `${file}: ${freq} Hz`);
  }
  // garbage: reported, not thrown
  let failed: string | null = null;
  const q2 = new PlayoutQueue({ rate: 8000 }, { decodeError: (type) => (failed = type) });
  q2.enqueueCoded('ogg', Buffer.from('definitely not an ogg file'));
  await drain(q2, 160);
  assert.equal(failed, 'ogg');
  assert.equal(q2.pendingCodedBytes, 0);
});

test('oggPackets splits pages and joins packets across segments', () => {
  const packets = [...oggPackets(fixture('tone-800-48k-opus.ogg'))];
  assert.equal(Buffer.from(packets[0]!.subarray(0, 8)).toString(), 'OpusHead');
  assert.equal(Buffer.from(packets[1]!.subarray(0, 8)).toString(), 'OpusTags');
  assert.ok(packets.length > 40);
});

test('cutField takes base64 out of a big JSON message', () => {
  const b64 = Buffer.alloc(30000, 7).toString('base64');
  const text = `{"type":"streamAudio","data":{"audioDataType":"raw","sampleRate":16000,"audioData" : "${b64.replace(/\//g, '\\/')}"}}`;
  const cut = cutField(text, 'audioData')!;
  assert.equal(cut.value, b64);
  assert.deepEqual(JSON.parse(cut.rest), { type: 'streamAudio', data: { audioDataType: 'raw', sampleRate: 16000, audioData: '' } });
  assert.equal(cutField('{"x":1}', 'audioData'), null);
});

test('wsbridge content types', () => {
  assert.equal(contentTypeRate('audio/l16;rate=16000'), 16000);
  assert.equal(contentTypeRate('audio/L16; rate=8000'), 8000);
  assert.equal(contentTypeRate('audio/l16'), 16000);
  assert.equal(contentTypeRate('audio/l16;rate=44100'), null);
  assert.equal(contentTypeRate('audio/pcmu'), null);
});
