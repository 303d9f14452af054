/**
 * wsbridge as an application the gateway answers calls into (the SIP side is
 * server/calls/local-endpoint.ts): once the media layer has answered the caller, the tap
 * connects; the 200 OK goes out when the WebSocket is open (a server that cannot be reached
 * fails the INVITE instead); the server closing ends the call (BYE), the caller's BYE closes
 * the socket.
 */
import type { Call } from '../calls/call.js';
import type { TapService } from './tap-service.js';

export interface WsBridgeApp {
  codecs: string[];
  start(call: Call, params: Record<string, string>): Promise<{ ended: Promise<string>; stop(reason: string): void }>;
}

export function wsbridgeApp(taps: TapService): WsBridgeApp {
  return {
    // G.722 first: the wideband one when the caller offers it (content is often 16 kHz)
    codecs: ['g722', 'opus', 'pcmu', 'pcma'],
    async start(call, params) {
      const tap = taps.startWsBridge(call.id, { uri: params.uri ?? '', headers: params.headers ?? null, contentType: params.contentType ?? null });
      await tap.ready;
      return {
        ended: tap.ended.then((reason) => `wsbridge: ${reason}`),
        stop: (reason) => tap.stop(reason),
      };
    },
  };
}
