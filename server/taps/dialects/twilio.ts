/**
 * Twilio Media Streams, bidirectional (`<Connect><Stream>`), which most voice-bot services
 * speak. JSON text only, mu-law 8 kHz mono, 20 ms per media message:
 * - to the server: `connected` {protocol "Call", version "1.0.0"}; `start` with streamSid,
 *   accountSid, callSid, tracks, mediaFormat {encoding "audio/x-mulaw", sampleRate 8000,
 *   channels 1} and customParameters; `media` {track, chunk, timestamp, payload} per track
 *   ("inbound" = the caller, "outbound" = the callee); `dtmf` {track "inbound_track",
 *   digit}; `mark` {name} once the audio before the server's mark has played; `stop`
 *   {accountSid, callSid}. Every message after `connected` has a sequenceNumber (a string,
 *   from 1) and the streamSid;
 * - from the server: `media` {payload} (mu-law 8 kHz, played in order), `mark` {name},
 *   `clear` (the queue is emptied now and the marks still pending are sent back at once).
 * Media messages are built as strings (no JSON.stringify per 20 ms).
 */
import crypto from 'node:crypto';
import { decodeUlaw, encodeUlaw } from '../../audio/g711.js';
import { mixMono } from '../../audio/mix.js';
import type { Dialect, DialectFactoryInput } from '../dialect.js';
import { TapErrorCode } from '../errors.js';

function sid(prefix: string, seed: string): string {
  return prefix + crypto.createHash('sha256').update(seed).digest('hex').slice(0, 32);
}

export function createTwilioDialect({ ctx, mix }: DialectFactoryInput): Dialect {
  const o = ctx.options.twilio ?? {};
  const tracks = o.tracks ?? (mix === 'stereo' ? 'both' : 'inbound');
  const trackList = tracks === 'both' ? ['inbound', 'outbound'] : [tracks];
  const streamSid = sid('MZ', `${ctx.tapId}:${crypto.randomUUID()}`);
  const callSid = sid('CA', ctx.call.callId);
  const accountSid = o.accountSid ?? sid('AC', 'sip-webrtc-gateway');
  let custom: Record<string, string> = o.customParameters ?? {};
  if (!o.customParameters && ctx.options.metadata) {
    try {
      const md = JSON.parse(ctx.options.metadata) as unknown;
      if (md && typeof md === 'object' && !Array.isArray(md)) custom = Object.fromEntries(Object.entries(md).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
    } catch {
      custom = { metadata: ctx.options.metadata };
    }
  }
  let seq = 0;
  const chunks = { inbound: 0, outbound: 0 };
  let ms = 0;
  const ulaw = Buffer.alloc(160);
  const mixed = new Int16Array(160);
  const head = `"streamSid":"${streamSid}"`;

  const sendMedia = (track: 'inbound' | 'outbound', pcm: Int16Array): void => {
    encodeUlaw(pcm, ulaw);
    const n = ++chunks[track];
    const text = `{"event":"media","sequenceNumber":"${++seq}","media":{"track":"${track}","chunk":"${n}","timestamp":"${ms}","payload":"${ulaw.toString('base64')}"},${head}}`;
    if (!ctx.sendText(text)) ctx.dropped();
  };

  return {
    rate: 8000,
    needs: { caller: tracks !== 'outbound' || mix === 'mixed', callee: tracks !== 'inbound' || mix === 'mixed' },
    premix: mix === 'mixed',
    drainOnClose: true,
    onOpen() {
      seq = 0;
      chunks.inbound = 0;
      chunks.outbound = 0;
      ms = 0;
      ctx.sendText(JSON.stringify({ event: 'connected', protocol: 'Call', version: '1.0.0' }), true);
      ctx.sendText(
        JSON.stringify({
          event: 'start',
          sequenceNumber: String(++seq),
          start: {
            accountSid,
            streamSid,
            callSid,
            tracks: trackList,
            mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
            customParameters: custom,
          },
          streamSid,
        }),
        true,
      );
    },
    onText(text) {
      let m: { event?: unknown; media?: { payload?: unknown }; mark?: { name?: unknown }; streamSid?: unknown };
      try {
        m = JSON.parse(text) as typeof m;
      } catch {
        ctx.error(TapErrorCode.BAD_MESSAGE, 'not JSON', { text: text.slice(0, 200) });
        ctx.emit('json', text.length > 65536 ? text.slice(0, 65536) : text);
        return;
      }
      switch (m.event) {
        case 'media': {
          const p = m.media?.payload;
          if (typeof p !== 'string') {
            ctx.error(TapErrorCode.BAD_MESSAGE, 'media without a payload');
            return;
          }
          const bytes = Buffer.from(p, 'base64');
          ctx.received();
          if (bytes.length > 0) ctx.playPcm(decodeUlaw(bytes), 8000);
          return;
        }
        case 'mark':
          if (typeof m.mark?.name === 'string') ctx.mark(m.mark.name);
          else ctx.error(TapErrorCode.BAD_MESSAGE, 'mark without a name');
          return;
        case 'clear':
          for (const name of ctx.clear()) this.onMarkPlayed(name);
          return;
        default:
          ctx.emit('json', text.length > 65536 ? text.slice(0, 65536) : text);
      }
    },
    onBinary() {
      ctx.error(TapErrorCode.BAD_MESSAGE, 'binary message in a Twilio media stream (JSON text expected)');
    },
    onAudio(caller, callee) {
      if (mix === 'mixed') sendMedia('inbound', mixMono(caller, callee, mixed));
      else {
        if (tracks !== 'outbound') sendMedia('inbound', caller);
        if (tracks !== 'inbound') sendMedia('outbound', callee);
      }
      ms += 20;
    },
    onDtmf(side, digit) {
      if (side !== 'caller') return;
      ctx.sendText(`{"event":"dtmf",${head},"sequenceNumber":"${++seq}","dtmf":{"track":"inbound_track","digit":"${digit}"}}`, true);
    },
    onMarkPlayed(name) {
      ctx.sendText(JSON.stringify({ event: 'mark', sequenceNumber: String(++seq), streamSid, mark: { name } }), true);
    },
    onStop() {
      ctx.sendText(JSON.stringify({ event: 'stop', sequenceNumber: String(++seq), streamSid, stop: { accountSid, callSid } }), true);
    },
  };
}
