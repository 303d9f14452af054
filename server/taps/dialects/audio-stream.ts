/**
 * mod_audio_stream / mod_audio_fork, as FreeSWITCH servers expect them:
 * - on every connection the metadata (if any) goes first, as text;
 * - then binary L16 little-endian messages of `bufferMs` (a multiple of 20 ms), mono (the
 *   caller), mixed or stereo (caller left, callee right), at 8 or 16 kHz, sent continuously;
 * - from the server: binary frames are L16 at the stream's rate and are played;
 *   `{"type":"streamAudio","data":{"audioDataType":"raw|wav|mp3|ogg","sampleRate":N,
 *   "audioData":"<base64>"}}` (mod_audio_stream) and `{"type":"playAudio","data":
 *   {"audioContentType":"raw|wav","sampleRate":N,"audioContent":"<base64>"}}`
 *   (mod_audio_fork) are played into the call (and reported as `play`);
 *   `{"type":"killAudio"}`, `clear` or `break` empty the queue at once (barge-in);
 *   `{"type":"mark","data":{"name":"x"}}` is echoed back, same shape, once the audio before
 *   it has played. Anything else the server sends (JSON or not) is a `json` event, as
 *   mod_audio_stream does;
 * - `stop [metadata]`: the metadata is sent last, then the socket closes (1000).
 *
 * A whole file in one message is the normal case here, so the JSON of a large message is
 * not parsed whole: the base64 field is cut out first (a 10 MB message costs one base64
 * decode, not a 10 MB JSON parse with a 10 MB string copy).
 */
import { parseWav } from '../../audio/wav.js';
import type { Dialect, DialectFactoryInput } from '../dialect.js';
import { TapErrorCode } from '../errors.js';
import { L16Framer } from '../l16-framer.js';
import { isSupportedRate } from '../rate-converter.js';

/** Messages above this size get the base64 field cut out before JSON.parse. */
const BIG = 8192;

/**
 * Cuts the string value of `"field"` out of a JSON text: the text without it (the field
 * left as "") and the value. Base64 holds no quote; a JSON escaper may have written "\/".
 */
export function cutField(text: string, field: string): { rest: string; value: string } | null {
  const key = `"${field}"`;
  const k = text.indexOf(key);
  if (k < 0) return null;
  let i = k + key.length;
  while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  if (text[i] !== ':') return null;
  i++;
  while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  if (text[i] !== '"') return null;
  const end = text.indexOf('"', i + 1);
  if (end < 0) return null;
  let value = text.slice(i + 1, end);
  if (value.includes('\\')) value = value.replace(/\\\//g, '/').replace(/\\[nr]/g, '');
  return { rest: text.slice(0, k) + key + ':""' + text.slice(end + 1), value };
}

interface AudioCommand {
  kind: string;
  rate: number;
  channels: number;
  b64: string;
}

export function createAudioStreamDialect({ ctx, mix, rate, bufferMs }: DialectFactoryInput): Dialect {
  const framer = new L16Framer(mix, rate, bufferMs);

  const play = (cmd: AudioCommand, event: 'streamAudio' | 'playAudio'): void => {
    const kind = cmd.kind.toLowerCase();
    let bytes: Buffer;
    try {
      bytes = Buffer.from(cmd.b64, 'base64');
    } catch {
      ctx.error(TapErrorCode.BAD_MESSAGE, `${event}: audio data is not base64`);
      return;
    }
    if (bytes.length === 0) {
      ctx.error(TapErrorCode.BAD_MESSAGE, `${event}: no audio data`);
      return;
    }
    let durationMs: number | null = null;
    let sampleRate = cmd.rate;
    switch (kind) {
      case 'raw': {
        if (!isSupportedRate(cmd.rate)) {
          ctx.error(TapErrorCode.BAD_MESSAGE, `${event}: unsupported sampleRate ${cmd.rate}`);
          return;
        }
        const ch = cmd.channels >= 1 && cmd.channels <= 8 ? cmd.channels : 1;
        durationMs = Math.round((Math.floor(bytes.length / (2 * ch)) * 1000) / cmd.rate);
        ctx.playL16(bytes, cmd.rate, ch);
        break;
      }
      case 'wav':
      case 'wave': {
        try {
          const wav = parseWav(bytes);
          if (!isSupportedRate(wav.sampleRate)) throw new Error(`unsupported rate ${wav.sampleRate}`);
          sampleRate = wav.sampleRate;
          durationMs = Math.round((wav.samples.length / wav.channels / wav.sampleRate) * 1000);
          if (wav.channels === 1) ctx.playPcm(wav.samples, wav.sampleRate);
          else {
            const b = Buffer.from(wav.samples.buffer, wav.samples.byteOffset, wav.samples.byteLength);
            ctx.playL16(b, wav.sampleRate, wav.channels);
          }
        } catch (e) {
          ctx.error(TapErrorCode.BAD_MESSAGE, `${event}: bad wav: ${(e as Error).message}`);
          return;
        }
        break;
      }
      case 'mp3':
      case 'ogg':
        ctx.playCoded(kind, bytes);
        break;
      default:
        ctx.error(TapErrorCode.BAD_MESSAGE, `${event}: unsupported audio type ${JSON.stringify(cmd.kind)}`);
        return;
    }
    ctx.received();
    ctx.emit('play', { audioDataType: kind, sampleRate, bytes: bytes.length, durationMs });
  };

  const handle = (text: string): void => {
    // the big field first, so the rest parses cheaply
    let b64: string | null = null;
    let body = text;
    if (text.length > BIG) {
      const cut = cutField(text, 'audioData') ?? cutField(text, 'audioContent');
      if (cut) {
        b64 = cut.value;
        body = cut.rest;
      }
    }
    let msg: unknown;
    try {
      msg = JSON.parse(body);
    } catch {
      ctx.emit('json', text.length > 65536 ? text.slice(0, 65536) : text);
      return;
    }
    const m = msg as { type?: unknown; event?: unknown; data?: Record<string, unknown>; name?: unknown };
    const type = typeof m.type === 'string' ? m.type : typeof m.event === 'string' ? m.event : '';
    const data = m.data && typeof m.data === 'object' ? m.data : {};
    switch (type) {
      case 'streamAudio':
        play({ kind: String(data.audioDataType ?? ''), rate: Number(data.sampleRate ?? rate) || rate, channels: Number(data.channels ?? 1) || 1, b64: b64 ?? String(data.audioData ?? '') }, 'streamAudio');
        return;
      case 'playAudio':
        play({ kind: String(data.audioContentType ?? 'raw'), rate: Number(data.sampleRate ?? rate) || rate, channels: Number(data.channels ?? 1) || 1, b64: b64 ?? String(data.audioContent ?? '') }, 'playAudio');
        return;
      case 'killAudio':
      case 'clear':
      case 'break':
        ctx.clear();
        break;
      case 'mark': {
        const name = typeof data.name === 'string' ? data.name : typeof m.name === 'string' ? m.name : null;
        if (name !== null) ctx.mark(name);
        break;
      }
    }
    ctx.emit('json', b64 !== null ? body : text.length > 65536 ? text.slice(0, 65536) : text);
  };

  return {
    rate,
    needs: { caller: true, callee: mix !== 'mono' },
    premix: mix === 'mixed',
    drainOnClose: true,
    onOpen() {
      framer.reset();
      const md = ctx.options.metadata;
      if (md) ctx.sendText(md, true);
    },
    onText: handle,
    onBinary(data) {
      ctx.received();
      ctx.playL16(data, rate);
    },
    onAudio(caller, callee) {
      if (!framer.push(caller, callee)) return;
      if (!ctx.sendBinary(framer.message)) ctx.dropped();
    },
    onDtmf() {
      // mod_audio_stream sends no DTMF on the socket: the `dtmf` event reports it
    },
    onMarkPlayed(name) {
      ctx.sendText(JSON.stringify({ type: 'mark', data: { name } }), true);
    },
    onStop(metadata) {
      if (metadata) ctx.sendText(metadata, true);
    },
  };
}
