/**
 * wsbridge as an application the gateway answers calls into (the SIP side is
 * server/calls/local-endpoint.ts): once the media layer has answered the caller, the tap
 * connects; the 200 OK goes out when the WebSocket is open (a server that cannot be reached
 * fails the INVITE instead); the server closing ends the call (BYE), the caller's BYE closes
 * the socket. The URL comes from SIP: it goes through the URL policy (taps.allowedUrls, the
 * resolved address checked and pinned) before anything connects.
 */
import { wsbridgeUrl } from '../taps/dialects/wsbridge.js';
import { parseUrl } from '../taps/options.js';
import type { TapService } from '../taps/tap-service.js';
import type { TapUrlPolicy } from '../taps/url-policy.js';
import type { Call } from './call.js';

export interface WsBridgeApp {
  codecs: string[];
  start(call: Call, params: Record<string, string>): Promise<{ ended: Promise<string>; stop(reason: string): void }>;
}

export function wsbridgeApp(taps: TapService, policy: TapUrlPolicy): WsBridgeApp {
  return {
    // G.722 first: the wideband one when the caller offers it (content is often 16 kHz)
    codecs: ['g722', 'opus', 'pcmu', 'pcma'],
    async start(call, params) {
      // ssrf (issue 10): refused URLs throw TapUrlRefused; the caller only ever sees a plain 503
      const url = parseUrl(wsbridgeUrl(params.uri ?? ''));
      const connectTo = await policy.resolve(url, 'sip');
      const tap = taps.startWsBridge(call.id, { uri: url, headers: params.headers ?? null, contentType: params.contentType ?? null, connectTo });
      // the tap has logged why (once, with the detail); the SIP side says no more than 503
      await tap.ready.catch(() => {
        throw new Error('the WebSocket did not open (see the tap\'s log)');
      });
      return {
        ended: tap.ended.then((reason) => `wsbridge: ${reason}`),
        stop: (reason) => tap.stop(reason),
      };
    },
  };
}
