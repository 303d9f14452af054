/**
 * The call's codecs as a tap sees them: decode what a party sends into linear PCM at the
 * codec's own rate, and encode what a party should hear. One coder per stream (G.722 and
 * Opus keep state); every buffer is allocated once.
 *
 * Native rates: PCMU/PCMA 8 kHz, G.722 16 kHz (RTP clock 8000, RFC 3551 §4.5.2), Opus
 * decoded and encoded at 16 kHz mono (libopus resamples internally; RTP clock 48000).
 */
import type { SdpCodec } from '../media/codecs.js';
import { decodeAlaw, decodeUlaw, encodeAlaw, encodeUlaw } from '../audio/g711.js';
import { G722Decoder, G722Encoder } from '../audio/g722.js';
import { OpusDecoder, OpusEncoder } from '../audio/opus.js';

export type NativeRate = 8000 | 16000;
export type CodecKind = 'pcmu' | 'pcma' | 'g722' | 'opus';

/** The codec of an SDP format, when a tap can decode it. */
export function codecKind(c: SdpCodec | null | undefined): CodecKind | null {
  if (!c) return null;
  const n = c.name.toLowerCase();
  if (n === 'pcmu' || n === 'pcma' || n === 'g722' || n === 'opus') return n;
  return null;
}

/** Longest decoded packet kept: 120 ms at 16 kHz (Opus' longest frame). */
export const MAX_DECODED = 1920;

export interface PacketDecoder {
  readonly kind: CodecKind;
  readonly rate: NativeRate;
  /** Decode one payload into `out` (MAX_DECODED long); returns the samples written (0: unusable). */
  decode(payload: Uint8Array, out: Int16Array): number;
  destroy(): void;
}

export interface FrameEncoder {
  readonly kind: CodecKind;
  readonly rate: NativeRate;
  /** RTP timestamp units per 20 ms frame */
  readonly tsPerFrame: number;
  /** Encode one 20 ms frame (rate / 50 samples); returns a view of an internal buffer. */
  encode(pcm: Int16Array): Uint8Array;
  destroy(): void;
}

export function createDecoder(kind: CodecKind): PacketDecoder {
  switch (kind) {
    case 'pcmu':
      return { kind, rate: 8000, decode: (p, out) => (p.length <= out.length ? decodeUlaw(p, out.subarray(0, p.length)).length : 0), destroy: () => {} };
    case 'pcma':
      return { kind, rate: 8000, decode: (p, out) => (p.length <= out.length ? decodeAlaw(p, out.subarray(0, p.length)).length : 0), destroy: () => {} };
    case 'g722': {
      const dec = new G722Decoder();
      return { kind, rate: 16000, decode: (p, out) => (p.length * 2 <= out.length ? dec.decode(p, out.subarray(0, p.length * 2)).length : 0), destroy: () => {} };
    }
    case 'opus': {
      const dec = new OpusDecoder({ sampleRate: 16000, channels: 1 });
      return {
        kind,
        rate: 16000,
        decode: (p, out) => {
          try {
            return dec.decode(p, out).length;
          } catch {
            return 0; // a corrupt packet is lost audio, not an error of the tap
          }
        },
        destroy: () => dec.destroy(),
      };
    }
  }
}

export function createEncoder(kind: CodecKind): FrameEncoder {
  switch (kind) {
    case 'pcmu': {
      const buf = new Uint8Array(160);
      return { kind, rate: 8000, tsPerFrame: 160, encode: (pcm) => encodeUlaw(pcm, buf), destroy: () => {} };
    }
    case 'pcma': {
      const buf = new Uint8Array(160);
      return { kind, rate: 8000, tsPerFrame: 160, encode: (pcm) => encodeAlaw(pcm, buf), destroy: () => {} };
    }
    case 'g722': {
      const enc = new G722Encoder();
      const buf = new Uint8Array(160);
      return { kind, rate: 16000, tsPerFrame: 160, encode: (pcm) => enc.encode(pcm, buf), destroy: () => {} };
    }
    case 'opus': {
      const enc = new OpusEncoder({ sampleRate: 16000, channels: 1, application: 'voip', complexity: 5 });
      const buf = new Uint8Array(1500);
      return { kind, rate: 16000, tsPerFrame: 960, encode: (pcm) => enc.encode(pcm, buf), destroy: () => enc.destroy() };
    }
  }
}
