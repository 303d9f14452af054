/**
 * Compressed audio a tap server sends back (mod_audio_stream `streamAudio` with
 * `audioDataType` mp3 or ogg), decoded a slice at a time so that a long file never costs one
 * long block of the event loop:
 * - mp3 (MPEG-1/2 layer III, also I/II): `mpg123-decoder`, libmpg123 in WebAssembly;
 * - ogg with Vorbis: `@wasm-audio-decoders/ogg-vorbis`, libvorbis in WebAssembly;
 * - ogg with Opus (RFC 7845): our own page reader below and the Opus decoder of
 *   server/audio/opus.ts, decoding straight at 16 kHz mono.
 * Every source yields mono int16 chunks at its own rate; the playout queue converts the rate.
 */
import { OpusDecoder } from '../audio/opus.js';

export type CodedType = 'mp3' | 'ogg';

export interface PcmChunk {
  pcm: Int16Array;
  rate: number;
}

export interface CodedSource {
  /** Decodes the next slice of input; null once everything is decoded. Throws on bad data. */
  next(): Promise<PcmChunk | null>;
  free(): void;
}

/** Input bytes per decode step: about 0.25 s of 128 kbit/s mp3. */
const SLICE = 4096;

function floatToMono(channels: Float32Array[], n: number): Int16Array {
  const out = new Int16Array(n);
  const c = channels.length;
  if (c === 0) return out;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let ch = 0; ch < c; ch++) s += channels[ch]![i]!;
    const v = Math.round((s / c) * 32767);
    out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return out;
}

interface WasmDecoded {
  channelData: Float32Array[];
  samplesDecoded: number;
  sampleRate: number;
}

class Mp3Source implements CodedSource {
  private off = 0;
  private dec: { ready: Promise<void>; decode(d: Uint8Array): WasmDecoded; free(): void } | null = null;

  constructor(private readonly data: Uint8Array) {}

  async next(): Promise<PcmChunk | null> {
    if (!this.dec) {
      const { MPEGDecoder } = await import('mpg123-decoder');
      this.dec = new MPEGDecoder();
      await this.dec.ready;
    }
    while (this.off < this.data.length) {
      const slice = this.data.subarray(this.off, this.off + SLICE);
      this.off += slice.length;
      const r = this.dec.decode(slice);
      if (r.samplesDecoded > 0) return { pcm: floatToMono(r.channelData, r.samplesDecoded), rate: r.sampleRate };
    }
    return null;
  }

  free(): void {
    this.dec?.free();
    this.dec = null;
  }
}

class VorbisSource implements CodedSource {
  private off = 0;
  private flushed = false;
  private dec: { ready: Promise<void>; decode(d: Uint8Array): Promise<WasmDecoded>; flush(): Promise<WasmDecoded>; free(): void } | null = null;

  constructor(private readonly data: Uint8Array) {}

  async next(): Promise<PcmChunk | null> {
    if (!this.dec) {
      const { OggVorbisDecoder } = await import('@wasm-audio-decoders/ogg-vorbis');
      this.dec = new OggVorbisDecoder();
      await this.dec.ready;
    }
    while (this.off < this.data.length) {
      const slice = this.data.subarray(this.off, this.off + SLICE);
      this.off += slice.length;
      const r = await this.dec.decode(slice);
      if (r.samplesDecoded > 0) return { pcm: floatToMono(r.channelData, r.samplesDecoded), rate: r.sampleRate };
    }
    if (!this.flushed) {
      this.flushed = true;
      const r = await this.dec.flush();
      if (r.samplesDecoded > 0) return { pcm: floatToMono(r.channelData, r.samplesDecoded), rate: r.sampleRate };
    }
    return null;
  }

  free(): void {
    this.dec?.free();
    this.dec = null;
  }
}

/**
 * Ogg pages (RFC 3533) -> packets. A page: "OggS", version, header type, granule (8),
 * serial (4), sequence (4), CRC (4), segment count, lacing values; a packet ends at the first
 * lacing value below 255 and may continue on the next page.
 */
export function* oggPackets(data: Uint8Array): Generator<Uint8Array> {
  let off = 0;
  let partial: Uint8Array[] = [];
  while (off + 27 <= data.length) {
    if (data[off] !== 0x4f || data[off + 1] !== 0x67 || data[off + 2] !== 0x67 || data[off + 3] !== 0x53) throw new Error('not an Ogg page');
    const nseg = data[off + 26]!;
    const table = off + 27;
    let body = table + nseg;
    if (body > data.length) throw new Error('truncated Ogg page');
    for (let i = 0; i < nseg; i++) {
      const lace = data[table + i]!;
      if (body + lace > data.length) throw new Error('truncated Ogg page');
      partial.push(data.subarray(body, body + lace));
      body += lace;
      if (lace < 255) {
        yield partial.length === 1 ? partial[0]! : Buffer.concat(partial);
        partial = [];
      }
    }
    off = body;
  }
}

class OggOpusSource implements CodedSource {
  private readonly packets: Generator<Uint8Array>;
  private dec: OpusDecoder | null = null;
  private headers = 0;
  /** decoded samples (at 16 kHz) still to drop at the start (the encoder's pre-skip) */
  private skip = 0;

  constructor(data: Uint8Array) {
    this.packets = oggPackets(data);
  }

  async next(): Promise<PcmChunk | null> {
    const chunks: Int16Array[] = [];
    let total = 0;
    // about 200 ms of packets per step
    while (total < 3200) {
      const r = this.packets.next();
      if (r.done) break;
      const p = r.value;
      if (this.headers < 2) {
        if (this.headers === 0) {
          if (p.length < 19 || Buffer.from(p.subarray(0, 8)).toString('latin1') !== 'OpusHead') throw new Error('not an Ogg Opus stream');
          this.skip = Math.round(((p[10]! | (p[11]! << 8)) * 16000) / 48000);
          this.dec = new OpusDecoder({ sampleRate: 16000, channels: 1 });
        }
        this.headers++;
        continue;
      }
      if (p.length === 0) continue;
      let pcm = this.dec!.decode(p);
      if (this.skip > 0) {
        const s = Math.min(this.skip, pcm.length);
        this.skip -= s;
        pcm = pcm.subarray(s);
      }
      if (pcm.length > 0) {
        chunks.push(pcm);
        total += pcm.length;
      }
    }
    if (total === 0) return null;
    const out = new Int16Array(total);
    let o = 0;
    for (const c of chunks) {
      out.set(c, o);
      o += c.length;
    }
    return { pcm: out, rate: 16000 };
  }

  free(): void {
    this.dec?.destroy();
    this.dec = null;
  }
}

/** A decoder for `data` of the given type (ogg: Opus or Vorbis, told by its first packet). */
export function codedSource(type: CodedType, data: Uint8Array): CodedSource {
  if (type === 'mp3') return new Mp3Source(data);
  const head = Buffer.from(data.subarray(0, Math.min(data.length, 80))).toString('latin1');
  if (head.includes('OpusHead')) return new OggOpusSource(data);
  return new VorbisSource(data);
}
