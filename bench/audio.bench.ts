/**
 * Per-frame cost of the audio building blocks (the taps' pipeline runs these every 20 ms per
 * call leg). Prints ns per 20 ms frame and how many such streams one core could carry for
 * that step alone. Not a test: figures depend on the machine.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/audio.bench.js [--ms=400]
 *
 * The last block is a tap's pipeline step by step, as a tap thread runs it each 20 ms for a
 * mixed 16 kHz tap on a PCMU call whose server echoes back: RTP in (both parties), the jitter
 * FIFO, the 8k -> 16k conversion (the taps' telephony-sized filter, and the wideband one for
 * comparison), mixing and framing, the echo's playout at 8 kHz, PCMU encoding and the RTP
 * header; and their sum, the audio work of one tap per 20 ms (sockets aside).
 */

import { decodeAlaw, decodeUlaw, encodeAlaw, encodeUlaw } from '../server/audio/g711.js';
import { G722Decoder, G722Encoder } from '../server/audio/g722.js';
import { interleaveStereo, mixMono } from '../server/audio/mix.js';
import { OpusDecoder, OpusEncoder } from '../server/audio/opus.js';
import { Resampler, type Rate } from '../server/audio/resample.js';
import { parseRtp, RtpPacketizer, type RtpPacket } from '../server/audio/rtp.js';
import { ToneGenerator } from '../server/audio/tone.js';
import type { LegCodecs } from '../server/media/codecs.js';
import { L16Framer } from '../server/taps/l16-framer.js';
import { PartyInput } from '../server/taps/party-input.js';
import { PlayoutQueue } from '../server/taps/playout-queue.js';
import { RateConverter } from '../server/taps/rate-converter.js';

if (process.argv.includes('--help')) {
  console.log('usage: node dist/bench/audio.bench.js [--ms=400]   (ns per 20 ms frame of each audio step, and a tap\'s pipeline step by step)');
  process.exit(0);
}
const budgetMs = Number(process.argv.find((a) => a.startsWith('--ms='))?.slice(5) ?? 400);
const FRAME_NS = 20e6;
let sink = 0;

/**
 * Run `fn` (one 20 ms frame of work) for about budgetMs after a warm-up, in 4 rounds; the
 * fastest round's ns per call (the least disturbed by other processes on the machine).
 */
function measure(fn: () => number): number {
  // At least 1500 calls: wasm code tiers up only after many runs of each function.
  const warmEnd = performance.now() + budgetMs / 4;
  for (let calls = 0; calls < 1500 || performance.now() < warmEnd; calls += 100) {
    for (let i = 0; i < 100; i++) sink += fn();
  }
  let best = Infinity;
  for (let round = 0; round < 4; round++) {
    let calls = 0;
    const start = process.hrtime.bigint();
    const end = performance.now() + budgetMs / 4;
    while (performance.now() < end) {
      for (let i = 0; i < 50; i++) sink += fn();
      calls += 50;
    }
    best = Math.min(best, Number(process.hrtime.bigint() - start) / calls);
  }
  return best;
}

function tone(rate: number, freq = 440): Int16Array {
  return new ToneGenerator(freq, rate, { amplitude: 8000 }).next();
}

const rows: Array<{ op: string; ns: number }> = [];
function bench(op: string, fn: () => number): void {
  rows.push({ op, ns: measure(fn) });
}

// G.711: 160 samples <-> 160 bytes.
{
  const pcm = tone(8000);
  const bytes = Buffer.alloc(160);
  const back = new Int16Array(160);
  encodeUlaw(pcm, bytes);
  bench('PCMU decode (160 B -> 160 samples)', () => decodeUlaw(bytes, back)[7]!);
  bench('PCMU encode (160 samples -> 160 B)', () => encodeUlaw(pcm, bytes)[7]!);
  bench('PCMU decode + encode', () => encodeUlaw(decodeUlaw(bytes, back), bytes)[7]!);
  bench('PCMA decode + encode', () => encodeAlaw(decodeAlaw(bytes, back), bytes)[7]!);
}

// Resampling, one 20 ms frame each way.
for (const [from, to] of [
  [8000, 16000],
  [16000, 8000],
  [48000, 16000],
  [48000, 8000],
  [16000, 48000],
  [8000, 48000],
] as Array<[Rate, Rate]>) {
  const r = new Resampler(from, to);
  const input = tone(from);
  const out = new Int16Array(to / 50);
  bench(`resample ${from / 1000}k -> ${to / 1000}k (${input.length} -> ${out.length})`, () => r.process(input, out)[3]!);
}

// G.722: 320 samples <-> 160 bytes.
{
  const enc = new G722Encoder();
  const dec = new G722Decoder();
  const pcm = tone(16000);
  const bytes = Buffer.alloc(160);
  const back = new Int16Array(320);
  bench('G.722 encode (320 samples -> 160 B)', () => enc.encode(pcm, bytes)[5]!);
  bench('G.722 decode (160 B -> 320 samples)', () => dec.decode(bytes, back)[5]!);
}

// Opus: decode a realistic stream of packets (a browser sends ~32-40 kbit/s voice).
{
  const enc = new OpusEncoder({ sampleRate: 48000, bitrate: 32000 });
  const gen = new ToneGenerator(440, 48000);
  const packets = Array.from({ length: 50 }, () => Buffer.from(enc.encode(gen.next())));
  // V8 first runs wasm with its baseline compiler and tiers hot functions up to the
  // optimizing one after a while (~4x faster here): warm every path before measuring.
  {
    const warm = new OpusDecoder({ sampleRate: 16000 });
    const warmPcm = new Int16Array(960);
    for (let i = 0; i < 3000; i++) warm.decode(enc.encode(gen.next(warmPcm)), warmPcm);
    warm.destroy();
  }
  for (const [rate, label] of [
    [48000, '48k'],
    [16000, '16k'],
    [8000, '8k'],
  ] as const) {
    const dec = new OpusDecoder({ sampleRate: rate, channels: 1 });
    const out = new Int16Array(dec.maxSamples);
    let k = 0;
    bench(`Opus decode 20 ms -> ${label} mono`, () => dec.decode(packets[k++ % 50]!, out)[9]!);
  }
  const stereo = new OpusDecoder({ sampleRate: 48000, channels: 2 });
  const out2 = new Int16Array(stereo.maxSamples);
  let k2 = 0;
  bench('Opus decode 20 ms -> 48k stereo', () => stereo.decode(packets[k2++ % 50]!, out2)[9]!);
  const frame48 = tone(48000);
  const frame16 = tone(16000);
  const pkt = Buffer.alloc(1500);
  // Encoding cost depends on the signal and mode libopus picks (a steady tone at 32 kbit/s
  // is coded CELT-only); a guide, not a speech figure.
  const enc16 = new OpusEncoder({ sampleRate: 16000, bitrate: 32000 });
  bench('Opus encode 20 ms 48k mono (32 kbit/s)', () => enc.encode(frame48, pkt).length);
  bench('Opus encode 20 ms 16k mono (32 kbit/s)', () => enc16.encode(frame16, pkt).length);
}

// Mixing and framing, 20 ms at 16 kHz.
{
  const a = tone(16000, 440);
  const b = tone(16000, 1000);
  const mixed = new Int16Array(320);
  const stereo = new Int16Array(640);
  bench('mixMono (320 samples)', () => mixMono(a, b, mixed)[1]!);
  bench('interleaveStereo (2 x 320 samples)', () => interleaveStereo(a, b, stereo)[1]!);
}

// RTP header work per packet.
{
  const tx = new RtpPacketizer({ payloadType: 0, clockRate: 8000 });
  const payload = Buffer.alloc(160, 0xff);
  const out = Buffer.alloc(1500);
  const wire = Buffer.from(tx.next(payload));
  const into = {} as RtpPacket;
  bench('RTP parse (reused object)', () => parseRtp(wire, into)!.payloadLength);
  bench('RTP packetize (caller buffer)', () => tx.next(payload, { out }).length);
}

// A tap's pipeline, step by step (mixed, 16 kHz, PCMU call, echoed back).
{
  const pcmu = Buffer.from(encodeUlaw(tone(8000, 440), Buffer.alloc(160)));
  const codecs: LegCodecs = { media: { pt: 0, name: 'PCMU', clockRate: 8000, channels: 1, fmtp: null }, dtmf: null };
  const txs = [new RtpPacketizer({ payloadType: 0, clockRate: 8000 }), new RtpPacketizer({ payloadType: 0, clockRate: 8000 })];
  const wires = txs.map(() => Buffer.alloc(1500));
  const inputs = [0, 1].map(() => new PartyInput(() => codecs, { digit: () => {}, event: () => {}, rate: () => {} }));
  const native = [new Int16Array(160), new Int16Array(160)];
  const premix = new Int16Array(160);
  const tapBuf = new Int16Array(320);
  const silent = new Int16Array(320);
  const tel = new RateConverter(8000, 16000, 'telephony');
  const wide = new RateConverter(8000, 16000, 'wideband');
  const down = { tel: new RateConverter(16000, 8000, 'telephony'), wide: new RateConverter(16000, 8000, 'wideband') };
  const framer = new L16Framer('mixed', 16000, 20);
  const queue = new PlayoutQueue({ rate: 8000 });
  const play = new Int16Array(160);
  const ulaw = Buffer.alloc(160);
  const out = Buffer.alloc(1500);
  const tx = new RtpPacketizer({ payloadType: 0, clockRate: 8000 });
  const steps: Array<[string, () => number]> = [
    ['tap: RTP in, 2 parties (parse, PCMU decode, FIFO)', () => {
      for (let k = 0; k < 2; k++) inputs[k]!.push(txs[k]!.next(pcmu, { out: wires[k]! }) as Buffer);
      return inputs[0]!.buffered;
    }],
    ['tap: FIFO pull, 2 parties', () => (inputs[0]!.pull(native[0]!) ? 1 : 0) + (inputs[1]!.pull(native[1]!) ? 1 : 0)],
    ['tap: premix 2 x 160 at 8k', () => {
      const a = native[0]!;
      const b = native[1]!;
      for (let i = 0; i < 160; i++) {
        const v = a[i]! + b[i]!;
        premix[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
      }
      return premix[3]!;
    }],
    ['tap: 8k -> 16k, telephony filter (31 taps)', () => tel.process(premix, tapBuf, 0)],
    ['tap: 8k -> 16k, wideband filter (95 taps), for comparison', () => wide.process(premix, tapBuf, 0)],
    ['tap: L16 framing, mixed 16k', () => (framer.push(tapBuf, silent) ? framer.message[1]! : 0)],
    ['tap: echo queued and pulled, 16k -> 8k telephony', () => {
      queue.enqueueL16(framer.message, 16000);
      return queue.pull(play);
    }],
    ['tap: 16k -> 8k wideband (95 taps), for comparison', () => down.wide.process(tapBuf, play, 0)],
    ['tap: PCMU encode + RTP header', () => tx.next(encodeUlaw(play, ulaw), { out }).length],
  ];
  let total = 0;
  for (const [op, fn] of steps) {
    bench(op, fn);
    if (!op.includes('for comparison')) total += rows.at(-1)!.ns;
  }
  rows.push({ op: 'tap: one 20 ms step, all of the above (telephony filters)', ns: total });
}

const width = Math.max(...rows.map((r) => r.op.length));
console.log(`audio building blocks, node ${process.version}, best of 4 x ${budgetMs / 4} ms per figure`);
console.log(`${'operation'.padEnd(width)}  ${'ns/frame'.padStart(10)}  ${'streams/core'.padStart(12)}`);
for (const { op, ns } of rows) {
  console.log(`${op.padEnd(width)}  ${ns.toFixed(0).padStart(10)}  ${Math.floor(FRAME_NS / ns).toString().padStart(12)}`);
}
if (sink === 0.5) console.log(sink); // keeps the work observable
