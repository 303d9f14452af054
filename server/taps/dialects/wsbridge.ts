/**
 * Nexmo's wsbridge: the gateway answers an INVITE to `wsbridge` itself and bridges the caller
 * to a WebSocket server named by `P-wsbridge-websocket-uri` (URL-encoded):
 * - on connection, one text message: `{"content-type":"audio/l16;rate=16000", ...headers}`
 *   (the JSON object of `P-wsbridge-websocket-headers`);
 * - then one binary message per 20 ms RTP frame of the caller (L16 little-endian at the
 *   chosen rate), and nothing while the caller sends nothing;
 * - binary messages from the server are L16 at that rate, played paced (a whole file may come
 *   at once: "Rx flow control"), comfort noise filling the gaps;
 * - DTMF from the caller as text: `{"event":"websocket:dtmf","digit":"5","duration":100}`
 *   (digit and duration are what mod_wsbridge sent; event names it as Vonage does);
 * - either side closing ends both: the server's close ends the call (BYE).
 */
import type { Dialect, DialectFactoryInput } from '../dialect.js';
import { TapErrorCode } from '../errors.js';
import { L16Framer } from '../l16-framer.js';

/** The WebSocket URL of P-wsbridge-websocket-uri: URL-decoded when it comes still encoded. */
export function wsbridgeUrl(uri: string): string {
  if (!/^wss?%3A/i.test(uri)) return uri;
  try {
    return decodeURIComponent(uri);
  } catch {
    return uri;
  }
}

export function contentTypeRate(contentType: string): 8000 | 16000 | null {
  const m = /^\s*audio\/l16\s*(?:;\s*rate\s*=\s*(\d+))?\s*$/i.exec(contentType);
  if (!m) return null;
  const rate = m[1] === undefined ? 16000 : Number(m[1]);
  return rate === 8000 || rate === 16000 ? rate : null;
}

export function createWsBridgeDialect({ ctx, rate }: DialectFactoryInput): Dialect {
  const framer = new L16Framer('mono', rate, 20);
  return {
    rate,
    needs: { caller: true, callee: false },
    premix: false,
    drainOnClose: false,
    onOpen() {
      const ct = `audio/l16;rate=${rate}`;
      // content-type first, and not one a header could replace
      const first: Record<string, unknown> = { 'content-type': ct, ...(ctx.options.wsbridgeHeaders ?? {}) };
      first['content-type'] = ct;
      ctx.sendText(JSON.stringify(first), true);
    },
    onText(text) {
      ctx.emit('json', text.length > 65536 ? text.slice(0, 65536) : text);
    },
    onBinary(data) {
      ctx.received();
      if (data.length % 2 !== 0) ctx.error(TapErrorCode.BAD_MESSAGE, `odd L16 message length ${data.length}`);
      ctx.playL16(data, rate);
    },
    onAudio(caller, callee, hadCaller) {
      if (!hadCaller) return; // nothing in silence
      framer.push(caller, callee);
      if (!ctx.sendBinary(framer.message)) ctx.dropped();
    },
    onDtmf(side, digit, durationMs) {
      if (side !== 'caller') return;
      ctx.sendText(JSON.stringify({ event: 'websocket:dtmf', digit, duration: durationMs }), true);
    },
    onMarkPlayed() {},
    onStop() {},
  };
}
