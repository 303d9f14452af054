/**
 * RIFF/WAVE with 16-bit PCM, mono or stereo, any sample rate: what taps write for recordings
 * and what a tap server may send back (mod_audio_stream's `audioDataType: "wav"`).
 *
 * Layout (Microsoft RIFF, "Multimedia Programming Interface and Data Specifications 1.0"):
 * `RIFF <size> WAVE` then chunks `<4cc> <u32 LE size> <data>[pad to even]`. We need `fmt `
 * and `data`; anything else (LIST/INFO, fact, bext, cue, JUNK...) is skipped.
 */

export interface WavAudio {
  sampleRate: number;
  channels: number;
  /** Interleaved samples (L R L R ... for stereo). */
  samples: Int16Array;
}

const WAVE_FORMAT_PCM = 0x0001;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

export class WavError extends Error {
  override readonly name = 'WavError';
}

function fourcc(b: Uint8Array, off: number): string {
  return String.fromCharCode(b[off]!, b[off + 1]!, b[off + 2]!, b[off + 3]!);
}

/**
 * Parse a 16-bit PCM WAV. Tolerant of what real files carry: extra chunks before or after
 * `data`, odd chunk sizes with their pad byte, WAVE_FORMAT_EXTENSIBLE with a PCM sub-format,
 * a `data` size of 0 or 0xFFFFFFFF or past the end (written by streamers that did not know
 * the length: the rest of the buffer is taken). Throws WavError on anything else.
 */
export function parseWav(buf: Uint8Array): WavAudio {
  if (buf.length < 12 || fourcc(buf, 0) !== 'RIFF' || fourcc(buf, 8) !== 'WAVE') {
    throw new WavError('not a RIFF/WAVE file');
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let fmt: { format: number; channels: number; sampleRate: number; bits: number; blockAlign: number } | undefined;
  let off = 12;
  while (off + 8 <= buf.length) {
    const id = fourcc(buf, off);
    const size = view.getUint32(off + 4, true);
    const body = off + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > buf.length) throw new WavError('truncated fmt chunk');
      let format = view.getUint16(body, true);
      if (format === WAVE_FORMAT_EXTENSIBLE && size >= 40) {
        // The sub-format GUID starts with the real format code.
        format = view.getUint16(body + 24, true);
      }
      fmt = {
        format,
        channels: view.getUint16(body + 2, true),
        sampleRate: view.getUint32(body + 4, true),
        blockAlign: view.getUint16(body + 12, true),
        bits: view.getUint16(body + 14, true),
      };
    } else if (id === 'data') {
      if (!fmt) throw new WavError('data chunk before fmt chunk');
      if (fmt.format !== WAVE_FORMAT_PCM) throw new WavError(`unsupported format 0x${fmt.format.toString(16)}`);
      if (fmt.bits !== 16) throw new WavError(`unsupported ${fmt.bits}-bit samples (16-bit PCM only)`);
      if (fmt.channels < 1 || fmt.sampleRate < 1) throw new WavError('invalid fmt chunk');
      const available = buf.length - body;
      const bytes = size === 0 || size > available ? available : size;
      // Whole frames only (a truncated last frame is dropped).
      const frame = 2 * fmt.channels;
      const n = Math.floor(bytes / frame) * fmt.channels;
      const samples = new Int16Array(n);
      for (let i = 0, p = body; i < n; i++, p += 2) samples[i] = ((buf[p]! | (buf[p + 1]! << 8)) << 16) >> 16;
      return { sampleRate: fmt.sampleRate, channels: fmt.channels, samples };
    }
    // Chunks are word aligned: an odd size is followed by one pad byte.
    off = body + size + (size & 1);
  }
  throw new WavError(fmt ? 'no data chunk' : 'no fmt chunk');
}

export interface WavHeaderOptions {
  sampleRate: number;
  channels?: number;
  /**
   * Size of the sample data in bytes. For a stream whose length is not known yet, pass
   * 0xFFFFFFFF (parseWav and most players then read to the end) and rewrite later.
   */
  dataBytes: number;
}

/** The canonical 44-byte header for 16-bit PCM. */
export function wavHeader({ sampleRate, channels = 1, dataBytes }: WavHeaderOptions): Buffer {
  const h = Buffer.alloc(44);
  const blockAlign = channels * 2;
  const unknown = dataBytes >= 0xffffffff - 36;
  h.write('RIFF', 0, 'latin1');
  h.writeUInt32LE(unknown ? 0xffffffff : 36 + dataBytes, 4);
  h.write('WAVE', 8, 'latin1');
  h.write('fmt ', 12, 'latin1');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(WAVE_FORMAT_PCM, 20);
  h.writeUInt16LE(channels, 22);
  h.writeUInt32LE(sampleRate, 24);
  h.writeUInt32LE(sampleRate * blockAlign, 28);
  h.writeUInt16LE(blockAlign, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'latin1');
  h.writeUInt32LE(unknown ? 0xffffffff : dataBytes, 40);
  return h;
}

/** Header + little-endian samples (interleaved when stereo). */
export function encodeWav(samples: Int16Array, sampleRate: number, channels = 1): Buffer {
  const dataBytes = samples.length * 2;
  const out = Buffer.allocUnsafe(44 + dataBytes);
  wavHeader({ sampleRate, channels, dataBytes }).copy(out, 0);
  for (let i = 0, p = 44; i < samples.length; i++, p += 2) out.writeInt16LE(samples[i]!, p);
  return out;
}
